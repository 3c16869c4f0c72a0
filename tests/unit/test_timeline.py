"""A chaos run's timeline.html from its history alone: pairing, fault spans, and the page
when parts of the run are missing (the browser test draws a real run's)."""

import json
import re

import pytest

from coordinator.tools.chaos import timeline


def entry(t, type_, f="drain", process="workload", **kw) -> dict:
    return {"t": t, "type": type_, "f": f, "process": process, **kw}


HISTORY = [
    entry(
        0.0,
        "meta",
        "scenario",
        "runner",
        name="demo",
        strategy="remote",
        seed=3,
        bound_s=20.0,
        lease_s=0.5,
        scenario={"description": "x"},
    ),
    entry(0.0, "invoke", index=0),
    entry(0.1, "ok", index=0, status="DONE"),
    entry(0.2, "invoke", index=1),
    entry(0.5, "fault", "kill-node", "nemesis", phase="start", what="kill-node cpu1"),
    entry(0.6, "fail", index=1, cpus=[{"cpu": 1, "ok": False, "error": "<gone>"}]),
    entry(0.7, "invoke", index=2),
    entry(0.9, "info", index=2, error="DEADLINE_EXCEEDED: late"),
    entry(1.0, "invoke", index=3),
    entry(1.2, "fault", "rpc", "nemesis", phase="start", what="rpc drop"),
    entry(1.5, "fault", "kill-node", "nemesis", phase="heal", what="kill-node cpu1"),
    entry(
        2.0,
        "final",
        "grants",
        "final",
        cpus={
            "0": [{"token": 1, "outcome": "committed", "pages": 3, "held_s": 0.01, "granted_t": 0.05, "lease_s": 0.5}]
        },
    ),
]


def test_operations_pair_each_invoke_with_its_completion_and_keep_the_open_ones():
    ops = timeline.operations(HISTORY)
    assert [(o["invoke"]["index"], o["type"], o["t1"]) for o in ops] == [
        (0, "ok", 0.1),
        (1, "fail", 0.6),
        (2, "info", 0.9),
        (3, "open", None),
    ]


def test_a_fault_never_healed_runs_to_the_end():
    spans = timeline.faults(HISTORY, 2.0)
    assert [(s["what"], s["t0"], s["t1"], s["healed"]) for s in spans] == [
        ("kill-node cpu1", 0.5, 1.5, True),
        ("rpc drop", 1.2, 2.0, False),
    ]


def test_the_page_says_when_there_is_no_verdict_and_escapes_what_the_history_holds(tmp_path):
    (tmp_path / "history.jsonl").write_text("".join(json.dumps(e) + "\n" for e in HISTORY))
    html = timeline.render(str(tmp_path))
    assert "No verdict: cannot read" in html
    assert "<gone>" not in html and "&lt;gone&gt;" in html
    # a bar per operation (the open one too), per fault, per grant; a band per fault in each chart
    assert len(re.findall(r'<rect class="bar"', html)) == 4 + 2 + 1
    assert len(re.findall(r'<rect class="band"', html)) == 2 * 2
    assert len(re.findall(r'<circle class="pt"', html)) == 3  # the completed operations' latencies
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_the_verdict_and_its_findings_are_on_top(tmp_path):
    (tmp_path / "history.jsonl").write_text("".join(json.dumps(e) + "\n" for e in HISTORY))
    (tmp_path / "verdict.json").write_text(json.dumps({"valid": False, "findings": {"lost": ["pfn 7 <lost>"]}}))
    html = timeline.render(str(tmp_path))
    assert html.index("valid: false") < html.index("Operations and faults")
    assert "pfn 7 &lt;lost&gt;" in html


def test_a_directory_without_history_is_refused(tmp_path):
    with pytest.raises(timeline.TimelineError, match=r"history\.jsonl"):
        timeline.render(str(tmp_path))
