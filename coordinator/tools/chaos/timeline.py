"""A chaos run's timeline.html, as Jepsen draws one: the verdict on top, then every operation
(invoke to completion, coloured by outcome) and every fault on one time axis, then each
operation's latency over time with the faults shaded.

Read from the run directory alone: history.jsonl (coordinator.tools.chaos.history) and
verdict.json. The history's times are seconds since the workload started. Lanes: one per
fault (start to heal), one per kind of operation, and, from the final grant records, one per
CPU whose pcp lock (or rcu-swap list set) a remote drainer was granted (granted to ended).
"""

import json
import os
from html import escape

from coordinator.tools import htmlpage
from coordinator.tools.chaos.history import read
from coordinator.tools.svg import Axis, Chart

OUTCOME_COLOR = {"ok": "#2ca02c", "fail": "#d62728", "info": "#ff7f0e"}
FAULT_COLOR = "#9467bd"
GRANT_COLOR = {"committed": "#1f77b4", "aborted": "#7f7f7f", "expired": "#d62728"}
VERDICT_COLOR = {True: "#2ca02c", False: "#d62728", "unknown": "#ff7f0e"}


class TimelineError(ValueError):
    """The run directory has no readable history."""


def operations(entries: list[dict]) -> list[dict]:
    """Each invoke paired with its completion: {f, process, t0, t1 (None: never completed),
    type ("ok" | "fail" | "info" | "open"), invoke, done}. Completions pair with the oldest open
    invoke of the same process, f and index (one at a time per process and f)."""
    open_: dict[tuple, list[dict]] = {}
    ops = []
    for e in entries:
        key = (e["process"], e["f"], e.get("index"))
        if e["type"] == "invoke":
            op = {"f": e["f"], "process": e["process"], "t0": e["t"], "t1": None, "type": "open", "invoke": e}
            open_.setdefault(key, []).append(op)
            ops.append(op)
        elif e["type"] in OUTCOME_COLOR and open_.get(key):
            op = open_[key].pop(0)
            op.update(t1=e["t"], type=e["type"], done=e)
    return ops


def faults(entries: list[dict], end: float) -> list[dict]:
    """Each fault's span {what, t0, t1, healed}; one never healed runs to `end`."""
    spans, active = [], {}
    for e in entries:
        if e["type"] != "fault":
            continue
        what = e.get("what", e["f"])
        if e["phase"] == "start":
            active[what] = {"what": what, "t0": e["t"], "t1": end, "healed": False, "start": e}
            spans.append(active[what])
        elif what in active:
            active.pop(what).update(t1=e["t"], healed=True)
    return spans


def _op_tip(op: dict) -> str:
    done = op.get("done", {})
    lines = [f"{op['f']} {op['type']}", f"invoke t={op['t0']:.3f}s"]
    if op["t1"] is not None:
        lines.append(f"done t={op['t1']:.3f}s, {1e3 * (op['t1'] - op['t0']):.1f} ms")
    for key in ("index", "status", "error"):
        if key in done or key in op["invoke"]:
            lines.append(f"{key}: {done.get(key, op['invoke'].get(key))}")
    bad = [c for c in done.get("cpus", []) if not c.get("ok", True)]
    lines += [f"cpu{c['cpu']}: {c['error']}" for c in bad]
    return "\n".join(lines)


def _verdict(run_dir: str) -> str:
    path = os.path.join(run_dir, "verdict.json")
    try:
        with open(path, encoding="utf-8") as f:
            v = json.load(f)
    except (OSError, ValueError) as err:
        return f'<p class="note" id="verdict">No verdict: cannot read {escape(path)} ({escape(str(err))}).</p>'
    valid = v.get("valid")
    findings = v.get("findings") or {}
    items = "".join(
        f"<li><b>{escape(k)}</b>: " + "<br>".join(escape(str(x)) for x in xs) + "</li>" for k, xs in findings.items()
    )
    stats = escape(json.dumps(v.get("stats", {}), indent=1, sort_keys=True))
    return (
        f'<div id="verdict"><span class="verdict" style="background:{VERDICT_COLOR.get(valid, "#7f7f7f")}">'
        f"valid: {escape(str(valid).lower())}</span>"
        + (f"<ul>{items}</ul>" if items else "<p>No findings.</p>")
        + f"<details><summary>checker statistics</summary><pre>{stats}</pre></details></div>"
    )


def _timeline_chart(ops: list[dict], spans: list[dict], grants: dict, end: float) -> str:
    lanes: list[str] = [f"fault: {s['what']}" for s in spans]
    lanes += sorted({f"{op['process']}: {op['f']}" for op in ops})
    lanes += [f"cpu{cpu} lock granted" for cpu in sorted(grants, key=int) if grants[cpu]]
    lanes = list(dict.fromkeys(lanes))  # a fault started twice keeps one lane
    row = {name: len(lanes) - 1 - i for i, name in enumerate(lanes)}  # the first lane on top
    chart = Chart(
        "Operations and faults",
        Axis(0, end, "seconds since the workload started"),
        Axis(-0.5, len(lanes) - 0.5, ""),
        width=1200,
        height=70 + 28 * len(lanes),
        left=200,
    )
    for s in spans:
        tip = f"{s['what']}\nstart t={s['t0']:.3f}s\n" + (f"healed t={s['t1']:.3f}s" if s["healed"] else "never healed")
        chart.band(s["t0"], s["t1"], FAULT_COLOR, tip)
        chart.bar(s["t0"], s["t1"], row[f"fault: {s['what']}"], FAULT_COLOR, tip)
    for op in ops:
        color = OUTCOME_COLOR.get(op["type"], "#bbbbbb")
        lane = row[f"{op['process']}: {op['f']}"]
        chart.bar(op["t0"], end if op["t1"] is None else op["t1"], lane, color, _op_tip(op))
    for cpu, gs in grants.items():
        for g in gs:
            held = g["held_s"] if g["held_s"] is not None else end - g["granted_t"]
            chart.bar(
                g["granted_t"],
                g["granted_t"] + held,
                row[f"cpu{cpu} lock granted"],
                GRANT_COLOR.get(g["outcome"], "#bbbbbb"),
                f"cpu{cpu} grant {g['token']}: {g['outcome']}, {g['pages']} pages\n"
                f"granted t={g['granted_t']:.3f}s, held {1e3 * held:.1f} ms (lease {g['lease_s']} s)",
            )
    for name, color in [*OUTCOME_COLOR.items(), ("fault", FAULT_COLOR)]:
        chart.legend(color, name)
    if grants:
        for name, color in GRANT_COLOR.items():
            chart.legend(color, f"grant {name}")
    return chart.render(y_labels={float(r): name for name, r in row.items()})


def _latency_chart(ops: list[dict], spans: list[dict], end: float) -> str:
    done = [op for op in ops if op["t1"] is not None]
    if not done:
        return '<p class="note" id="no-latency">No operation completed: no latency to plot.</p>'
    ms = [1e3 * max(op["t1"] - op["t0"], 1e-6) for op in done]
    chart = Chart(
        "Operation latency (invoke to completion), faults shaded",
        Axis(0, end, "invoked at (seconds since the workload started)"),
        Axis(min(ms) / 1.5, max(ms) * 1.5, "latency (ms, wall)", log=True),
        width=1200,
        height=320,
        left=200,  # the timeline's: the two time axes line up
    )
    for s in spans:
        chart.band(s["t0"], s["t1"], FAULT_COLOR, s["what"])
    chart.dots([(op["t0"], v, OUTCOME_COLOR[op["type"]], _op_tip(op)) for op, v in zip(done, ms, strict=True)])
    for name, color in [*OUTCOME_COLOR.items(), ("fault active", FAULT_COLOR)]:
        chart.legend(color, name)
    return chart.render()


def _placed(grants: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The grant records the timeline can place: a history written before grants recorded granted_t
    has none (the checker still reads them)."""
    return {cpu: [g for g in gs if g.get("granted_t") is not None] for cpu, gs in grants.items()}


def render(run_dir: str) -> str:
    path = os.path.join(run_dir, "history.jsonl")
    try:
        entries = read(path)
    except (OSError, ValueError) as err:
        raise TimelineError(f"cannot read {path}: {err}") from None
    meta = next((e for e in entries if e["type"] == "meta" and e["f"] == "scenario"), {})
    ops = operations(entries)
    end = max((e["t"] for e in entries), default=1.0)
    spans = faults(entries, end)
    finals = [e for e in entries if e["type"] == "final"]
    grants = _placed(next((e.get("cpus", {}) for e in finals if e["f"] == "grants"), {}))
    title = f"pcpsim chaos run {meta.get('name', os.path.basename(run_dir))} / {meta.get('strategy', '?')}"
    described = meta.get("scenario", {}).get("description", "")
    unfinished = sum(op["t1"] is None for op in ops)
    body = [
        _verdict(run_dir),
        f"<p>{escape(described.rstrip('.'))}. Seed {escape(str(meta.get('seed', '?')))}; {len(ops)} operations"
        + (f", {unfinished} never completed (grey, to the end)" if unfinished else "")
        + f"; {len(spans)} fault{'s' * (len(spans) != 1)}. Hover a bar or point for its values.</p>",
        _timeline_chart(ops, spans, grants, end),
        _latency_chart(ops, spans, end),
    ]
    return htmlpage.page(title, "".join(body))


def write(run_dir: str, out: str | None = None) -> str:
    """RUN_DIR/timeline.html (or `out`); returns the path written."""
    out = out or os.path.join(run_dir, "timeline.html")
    htmlpage.write(out, render(run_dir))
    return out
