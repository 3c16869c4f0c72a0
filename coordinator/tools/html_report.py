"""`pcpsim report RESULTS.json --html OUT.html`: a compare results file as one self-contained page.

The same data as the terminal report (coordinator.tools.report) and the PNG plots
(coordinator.tools.plots), drawn as inline SVG with hover values: the compare table, wake-up
survival curves per latency CPU, the drain_all_pages duration CDF, the oslat histogram,
cyclictest lines and the osnoise table, and per-CPU noise by cause per phase.

And per strategy phase, the per-CPU timeline of one drain window (`phases.<strategy>.drain_window`,
coordinator.tools.compare): for each latency CPU, lanes of the latency task's activations, the work
items and IRQs that ran on it, the drainer's holds of its pcp lock, and its buddy fallbacks, around
the drain_all_pages of median duration. A results file without it gets a note instead.
"""

from html import escape

from coordinator.tools import compare_table, report, results_file
from coordinator.tools.htmlpage import page, table
from coordinator.tools.svg import PALETTE, Axis, Chart

PHASE_COLOR = {"noise_floor": "#7f7f7f", "workqueue": "#d62728", "remote": "#1f77b4", "rcu-swap": "#2ca02c"}
CAUSE_COLOR = {
    "workqueue": "#d62728",
    "pcp_lock": "#1f77b4",
    "zone_lock": "#9467bd",
    "irq": "#ff7f0e",
    "other": "#7f7f7f",
}
LANE_TITLE = {
    "task": "latency task busy",
    "work": "work items, IRQs",
    "lock": "pcp lock held by drainer",
    "fallback": "buddy fallbacks",
}
LANE_COLOR = {"task": "#2ca02c", "work": "#d62728", "lock": "#1f77b4", "fallback": "#9467bd"}
NO_WINDOW = (
    "No per-CPU timeline of a drain window: this results file has no phases.<strategy>.drain_window "
    "(written by pcpsim compare since the timeline was added, for strategy phases that completed a drain)."
)


def _color(name: str, i: int) -> str:
    return PHASE_COLOR.get(name, PALETTE[i % len(PALETTE)])


def compare_section(result: dict) -> str:
    rows = [[label, *cells] for label, cells in compare_table.table_rows(result)]
    floor = result.get("noise_floor", {}).get("wake_latency_p99_s")
    scale = result["time_scale"]
    noise = (
        f"Noise floor (no drains): preemptible wake-up p99 {floor * 1e3:.2f} ms "
        f"{compare_table.clock_name(scale)} ({floor / scale * 1e6:.1f} kernel us). "
        if isinstance(floor, (int, float))
        else ""
    )
    note = compare_table.clock_note(scale)
    return f"<h2>Strategies side by side</h2><p>{noise}{note[0].upper() + note[1:]}.</p>" + table(
        ["", *result["strategies"]], rows
    )


def wakeup_charts(result: dict) -> str:
    cpus = sorted({int(c) for p in result["phases"].values() for c in p["cpus"]})
    figures = []
    for cpu in cpus:
        found = report.survival_curves(result, cpu)
        kind = found[-1][2]["role"] if found else ""
        top = max([1.0, *(xs[-1] for *_, xs, _ in found if xs)])
        curves = [(i, phase, d, list(zip(xs, ys, strict=True))) for i, phase, d, xs, ys in found]
        floor = min((y for *_, pts in curves for _, y in pts), default=0.1)
        chart = Chart(
            f"cpu{cpu} ({kind}): wake-up latency survival",
            Axis(0, top, "wake-up latency (kernel us, 1 us buckets)"),
            Axis(floor / 2, 1.0, "fraction of wake-ups >= x", log=True),
        )
        for i, phase, d, pts in curves:
            chart.series(
                pts,
                _color(phase, i),
                report.curve_label(result, phase, d),
                lambda x, y: f">= {x:g} us: {y:.4f} of wake-ups",
                step=True,
                dash="4 3" if phase == "noise_floor" else "",
            )
        figures.append(chart.render())
    return "<h2>Wake-up latency (survival curves)</h2>" + "".join(figures)


def drain_chart(result: dict) -> str:
    durations = report.drain_durations(result)
    flat = [x * 1e3 for v in durations.values() for x in v]
    chart = Chart(
        "drain_all_pages duration CDF per strategy",
        Axis(min(flat, default=1.0) / 1.2, max(flat, default=10.0) * 1.2, "drain_all_pages duration (wall ms)", True),
        Axis(0, 1.0, "fraction of drains <= x"),
    )
    scale = result["time_scale"]
    for i, (name, ds) in enumerate(durations.items()):
        n = len(ds)
        pts = [(x * 1e3, (k + 1) / n) for k, x in enumerate(ds)]
        label = f"{name} (n={n}" + (f", p50 {pts[(n - 1) // 2][0]:.1f} ms, max {pts[-1][0]:.1f} ms)" if n else ")")
        chart.series(
            pts,
            _color(name, i),
            label,
            lambda x, y: f"{x:.2f} ms ({x / 1e3 / scale * 1e6:.1f} kernel us): {y:.3f} of drains",
            step=True,
        )
    return "<h2>drain_all_pages duration</h2>" + chart.render()


def oslat_section(result: dict) -> str:
    out = [
        "<h2>oslat: wake-up latency histograms</h2>",
        f"<p>Rows: {result.get('hist_bucket_kernel_us', 1)} us buckets of kernel time; columns: latency CPUs; "
        f"empty buckets past {report.DENSE_ROWS - 1} us skipped (...).</p>",
    ]
    out.append('<div class="row">')
    for phase in report.ordered_phases(result):
        cpus = report.phase_cpus(result, phase)
        out.append(f"<div><h3>phase {escape(phase)} ({escape(report.phase_title(phase))})</h3>")
        if not cpus:
            out.append("<p>(no latency CPUs)</p></div>")
            continue
        hists = [report.histogram(d) for _, d in cpus]
        rows: list[list] = [
            ["...", *[""] * len(cpus)] if b is None else [f"{b} us", *[h.get(b, 0) for h in hists]]
            for b in report.histogram_rows(hists)
        ]
        for label, key, fmt in (
            ("Minimum (us)", "wake_latency_min_s", ".1f"),
            ("Average (us)", "wake_latency_avg_s", ".3f"),
            ("Maximum (us)", "wake_latency_max_s", ".1f"),
        ):
            rows.append([label, *[format(report.kus(result, d[key]), fmt) if d["runs"] else "-" for _, d in cpus]])
        out.append(table(["Core", *[f"cpu{c}" for c, _ in cpus]], rows) + "</div>")
    return "".join(out) + "</div>"


def cyclictest_section(result: dict) -> str:
    return "<h2>cyclictest</h2><pre>" + escape(report.cyclictest_lines(result)) + "</pre>"


def osnoise_section(result: dict) -> str:
    out = [
        "<h2>osnoise: noise per latency CPU</h2>",
        "<p>Times in kernel us. IRQ: simulated IRQs; Thread: kworker (workqueue) items; Lock: pcp "
        "trylock failures that fell back to zone-&gt;lock (pcpsim's column); HW: lateness with no "
        "simulated cause; NMI and Softirq are not simulated.</p>",
    ]
    cols = ["Runtime", "Noise", "% CPU Aval", "Max Single", *report.OSNOISE_COUNTS]
    for phase in report.ordered_phases(result):
        rows = []
        for cpu, d in report.phase_cpus(result, phase):
            r = report.osnoise_row(cpu, d, result)
            rows.append(
                [
                    cpu,
                    r["Period"],
                    f"{r['Runtime']:.0f}",
                    f"{r['Noise']:.1f}",
                    f"{r['% CPU Aval']:.5f}",
                    f"{r['Max Single']:.1f}",
                    *[r[c] for c in report.OSNOISE_COUNTS],
                ]
            )
        out.append(f"<h3>phase {escape(phase)}</h3>" + table(["CPU", "Period", *cols], rows, numeric_from=2))
    return "".join(out)


def noise_chart(result: dict) -> str:
    """Per latency CPU and phase, a bar per noise cause: stolen kernel us, with the event count
    and the CPU's drain work items and longest drain wait on hover."""
    lanes = [(phase, cpu, d) for phase in report.ordered_phases(result) for cpu, d in report.phase_cpus(result, phase)]
    stolen = [report.kus(result, s) for _, _, d in lanes for s in d["stolen_s"].values()]
    chart = Chart(
        "Stolen time by cause, per latency CPU and phase (kernel us)",
        Axis(0, max(stolen, default=1.0) * 1.1, "kernel us stolen from the latency task"),
        Axis(-0.5, len(lanes) - 0.5, ""),
        height=max(140, 60 + 26 * len(lanes)),
        left=140,
    )
    labels = {}
    for i, (phase, cpu, d) in enumerate(lanes):
        row = len(lanes) - 1 - i  # the first lane on top
        labels[float(row)] = f"{phase} cpu{cpu}"
        x = 0.0
        for cause, sec in sorted(d["stolen_s"].items()):
            us = report.kus(result, sec)
            chart.bar(
                x,
                x + us,
                row,
                CAUSE_COLOR.get(cause, "#8c564b"),
                f"{phase} cpu{cpu} {cause}: {us:.1f} us in {d['noise_events'].get(cause, 0)} events; "
                f"drain work items {d['drain_work_items']}, longest drain wait "
                f"{report.kus(result, d['drain_wait_max_s']):.1f} us",
            )
            x += us
    for cause, color in CAUSE_COLOR.items():
        chart.legend(color, cause)
    return chart.render(y_labels=labels)


def window_charts(result: dict) -> str:
    """Per strategy phase, the timeline of its drain window: a row per latency CPU and lane, a bar
    per event (hover: kind, start from the drain's start, duration), the drain itself shaded."""
    scale = result["time_scale"]
    figures = []
    for i, phase in enumerate(report.ordered_phases(result)):
        w = result["phases"][phase].get("drain_window")
        if w is None:
            continue
        cpus = sorted(w["cpus"], key=int)
        rows = [(cpu, lane) for cpu in cpus for lane in results_file.WINDOW_LANES]
        lo, hi = w["from_s"] * 1e3, w["to_s"] * 1e3
        chart = Chart(
            f"{phase}: one drain window per latency CPU ({w['trigger']} drain of median duration, "
            f"{w['duration_s'] * 1e3:.2f} ms)",
            Axis(lo, hi, "wall ms from the drain's start (after pcpu_drain_mutex)"),
            Axis(-0.5, len(rows) - 0.5, ""),
            height=max(160, 60 + 22 * len(rows)),
            left=200,
        )
        dur = w["duration_s"]
        chart.band(
            0.0,
            dur * 1e3,
            _color(phase, i),
            f"{phase} drain_all_pages: {dur * 1e3:.2f} ms ({dur / scale * 1e6:.1f} kernel us), "
            f"cpus marked {', '.join(map(str, w['cpus_marked'])) or 'none'}",
        )
        labels = {}
        for k, (cpu, lane) in enumerate(rows):
            row = len(rows) - 1 - k  # the first CPU's lanes on top
            labels[float(row)] = f"cpu{cpu} {LANE_TITLE[lane]}"
            for ev in (e for e in w["cpus"][cpu] if e["lane"] == lane):
                start, end = ev["start_s"] * 1e3, ev["end_s"] * 1e3
                d = ev["end_s"] - ev["start_s"]
                color = CAUSE_COLOR.get(ev["kind"], LANE_COLOR[lane]) if lane == "work" else LANE_COLOR[lane]
                chart.bar(
                    max(start, lo),
                    min(end, hi),
                    row,
                    color,
                    f"cpu{cpu} {lane} {ev['kind']}: at {start:+.3f} ms, {d * 1e3:.3f} ms "
                    f"({d / scale * 1e6:.1f} kernel us)",
                    cls=f"bar lane-cpu{cpu}-{lane}",
                )
        for lane in results_file.WINDOW_LANES:  # top to bottom within a CPU
            chart.legend(LANE_COLOR[lane], LANE_TITLE[lane])
        chart.legend(CAUSE_COLOR["irq"], "IRQs (work lane)")
        figures.append(chart.render(y_labels=labels))
    if not figures:
        return f'<p class="note" id="no-timeline">{escape(NO_WINDOW)}</p>'
    return "".join(figures)


def drains_section(result: dict) -> str:
    return "<h2>Per-CPU view of the drains</h2>" + window_charts(result) + noise_chart(result)


def render(result: dict, source: str) -> str:
    cfg = result.get("config", {})
    head = (
        f"<p>From <code>{escape(source)}</code>: kernel {escape(str(result.get('kernel', '?')))}, seed "
        f"{escape(str(result.get('seed', '?')))}, {cfg.get('measure_s', '?')} s measured per phase, a drain "
        f"every {cfg.get('drain_interval_s', '?')} s on average. Hover a point or bar for its values.</p>"
    )
    body = [
        head,
        compare_section(result),
        wakeup_charts(result),
        drain_chart(result),
        drains_section(result),
        oslat_section(result),
        cyclictest_section(result),
        osnoise_section(result),
    ]
    return page("pcpsim compare report", "".join(body))
