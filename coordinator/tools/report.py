"""`pcpsim report`: a `pcpsim compare` results file seen the way RT users look at a CPU.

Three views, rebuilt from the JSON alone (no cluster needed):
- oslat: a wake-up latency histogram per phase, 1 us kernel-time buckets as rows and the
  latency CPUs as columns, then Minimum/Average/Maximum (rt-tests' oslat prints the same).
- cyclictest: one `T: n (pid) P: I: C: Min: Act: Avg: Max:` line per latency task and
  phase (rt-tests' cyclictest format string).
- osnoise: the columns of `rtla osnoise top`, with the simulator's noise causes mapped
  onto its interference counts (see OSNOISE_CAUSES).

Units: latencies and noise are shown in kernel microseconds (wall / time_scale), as the
kernel tools would print them; the latency tasks' periods are user-space settings given
in wall time (node.shared.timebase), so cyclictest's I: is the wall-time period in us.
"""

from coordinator.tools import compare_table
from coordinator.tools.schedule import PHASES

DENSE_ROWS = 32  # oslat's default bucket count: rows 0..31 are printed even when empty
PRIO = {"rt": 99, "preemptible": 0}  # cyclictest prints P:0 for a SCHED_OTHER thread
# Simulator noise cause -> `rtla osnoise top` column. osnoise counts kworkers as Thread
# noise; it has no column for time lost to a contended lock, so Lock is ours: fast-path
# pcp trylock failures that fell back to the buddy under zone->lock (remote drains), and
# the task's own refills and frees queued for zone->lock.
# `other` is lateness nothing on the CPU explains: osnoise calls noise with no OS cause HW.
OSNOISE_CAUSES = {"irq": "IRQ", "workqueue": "Thread", "pcp_lock": "Lock", "zone_lock": "Lock", "other": "HW"}
OSNOISE_COUNTS = ("HW", "NMI", "IRQ", "Softirq", "Thread", "Lock")


# ------------------------------------------------------------------ helpers
def ordered_phases(result: dict) -> list[str]:
    """compare's phase order first (noise floor, then each strategy), then any others."""
    names = list(result["phases"])
    return [p for p in PHASES if p in names] + sorted(p for p in names if p not in PHASES)


def phase_cpus(result: dict, phase: str) -> list[tuple[int, dict]]:
    return sorted((int(c), d) for c, d in result["phases"][phase]["cpus"].items())


def histogram(d: dict) -> dict[int, int]:
    return {int(b): n for b, n in d["wake_latency_hist_kernel_us"].items() if n}


def kus(result: dict, seconds: float) -> float:
    """Wall seconds -> kernel microseconds."""
    return seconds / result["time_scale"] * 1e6


def phase_title(phase: str) -> str:
    return "no drains" if phase == "noise_floor" else f"drain_all_pages strategy {phase}"


def histogram_rows(hists: list[dict[int, int]]) -> list[int | None]:
    """Buckets to print: every bucket below DENSE_ROWS up to the largest observed, then only
    non-empty ones; None marks a run of skipped empty buckets."""
    present = sorted({b for h in hists for b in h})
    if not present:
        return []
    rows: list[int | None] = list(range(min(present[-1], DENSE_ROWS - 1) + 1))
    for b in present:
        if b < DENSE_ROWS:
            continue
        if rows[-1] is not None and b > rows[-1] + 1:
            rows.append(None)
        rows.append(b)
    return rows


# ------------------------------------------------------------------ oslat
def oslat_table(result: dict) -> str:
    scale = result["time_scale"]
    bucket = result.get("hist_bucket_kernel_us", 1)
    out = [
        f"# oslat-style wake-up latency histograms: rows are {bucket} us buckets of kernel time "
        f"([k, k+{bucket}) us), columns are latency CPUs; {compare_table.clock_note(scale)}; "
        f"empty buckets past {DENSE_ROWS - 1} us are skipped (...)"
    ]
    for phase in ordered_phases(result):
        cpus = phase_cpus(result, phase)
        out.append(f"\n## phase {phase} ({phase_title(phase)})")
        if not cpus:
            out.append("   (no latency CPUs)")
            continue
        hists = [histogram(d) for _, d in cpus]
        out.append(f"{'Core:':>13}\t" + " ".join(f"{'cpu' + str(c):>10}" for c, _ in cpus))
        for b in histogram_rows(hists):
            if b is None:
                out.append(f"{'...':>13}")
                continue
            out.append(f"{b:>7d} (us):\t" + " ".join(f"{h.get(b, 0):>10d}" for h in hists))

        def row(label: str, key: str, fmt: str, cpus: list[tuple[int, dict]] = cpus) -> str:
            cells = [format(kus(result, d[key]), fmt) if d["runs"] else "-" for _, d in cpus]
            return f"{label:>13}\t" + " ".join(f"{c:>10}" for c in cells) + " (us)"

        out += [
            row("Minimum:", "wake_latency_min_s", ".1f"),
            row("Average:", "wake_latency_avg_s", ".3f"),
            row("Maximum:", "wake_latency_max_s", ".1f"),
            f"{'Max-Min:':>13}\t"
            + " ".join(
                f"{kus(result, d['wake_latency_max_s'] - d['wake_latency_min_s']):>10.1f}"
                if d["runs"]
                else f"{'-':>10}"
                for _, d in cpus
            )
            + " (us)",
            f"{'Duration:':>13}\t"
            + " ".join(f"{d['runs'] * d['period_s']:>10.3f}" for _, d in cpus)
            + f" (sec, {compare_table.clock_name(result['time_scale'])})",
        ]
    return "\n".join(out)


# ------------------------------------------------------------------ cyclictest
def cyclictest_line(index: int, cpu: int, d: dict, result: dict) -> str:
    """rt-tests' format: "T:%2d (%5d) P:%2d I:%ld C:%7lu Min:%7ld Act:%8ld Avg:%8ld Max:%8ld"."""

    def us(key: str) -> int:
        return round(kus(result, d[key])) if d["runs"] else 0

    return (
        f"T:{index:2d} ({cpu:5d}) P:{PRIO.get(d['kind'], 0):2d} I:{round(d['period_s'] * 1e6)} "
        f"C:{d['runs']:7d} Min:{us('wake_latency_min_s'):7d} Act:{us('wake_latency_last_s'):8d} "
        f"Avg:{us('wake_latency_avg_s'):8d} Max:{us('wake_latency_max_s'):8d}"
    )


def cyclictest_lines(result: dict) -> str:
    out = [
        f"# cyclictest-style summary: Min/Act/Avg/Max in kernel us (rounded; "
        f"{compare_table.clock_note(result['time_scale'])}), I: the task's period in "
        f"{compare_table.clock_name(result['time_scale'])} us, "
        "(pid) column: the simulated CPU, P:99 RT task / P:0 preemptible"
    ]
    for phase in ordered_phases(result):
        out.append(f"# phase {phase} ({phase_title(phase)})")
        out += [cyclictest_line(i, cpu, d, result) for i, (cpu, d) in enumerate(phase_cpus(result, phase))]
    return "\n".join(out)


# ------------------------------------------------------------------ osnoise
def osnoise_row(cpu: int, d: dict, result: dict) -> dict:
    """One `rtla osnoise top` row; times in kernel us. Runtime is runs x period (the time
    the task was observed); noise is what its windows [programmed wake, done] lost."""
    runtime = kus(result, d["runs"] * d["period_s"])
    noise = kus(result, sum(d["stolen_s"].values()))
    counts = dict.fromkeys(OSNOISE_COUNTS, 0)
    other = {}
    for cause, n in d["noise_events"].items():
        if cause in OSNOISE_CAUSES:
            counts[OSNOISE_CAUSES[cause]] += n
        else:
            other[cause] = n
    return {
        "CPU": cpu,
        "Period": f"#{d['runs']}",
        "Runtime": runtime,
        "Noise": noise,
        "% CPU Aval": 100.0 * (1 - noise / runtime) if runtime else 0.0,
        "Max Noise": None,  # nodes do not record noise per period: see the footnote
        "Max Single": kus(result, d["max_single_noise_s"]),
        **counts,
        "other": other,
    }


def osnoise_table(result: dict) -> str:
    out = [
        f"# rtla osnoise top-style noise per latency CPU: time is in kernel us "
        f"({compare_table.clock_note(result['time_scale'])}); Period = #periods observed (runs), "
        "Runtime = runs x period; the counts are noise events inside the task's windows (programmed "
        "wake to done): IRQ = simulated IRQs, Thread = kworker (workqueue) items, Lock = waits for a "
        "lock (our column: pcp trylock failures that fell back to zone->lock, and the task's own refills "
        "and frees queued for zone->lock); HW/NMI/Softirq are not simulated (0); Max Noise (noise "
        "within one period) is not recorded by nodes (-)"
    ]
    head = (
        f"{'CPU':>3} {'Period':<8} {'Runtime':>12} {'Noise':>10} {'% CPU Aval':>11} {'Max Noise':>10} "
        f"{'Max Single':>10} " + " ".join(f"{c:>8}" for c in OSNOISE_COUNTS)
    )
    for phase in ordered_phases(result):
        out += [f"## phase {phase} ({phase_title(phase)})", head]
        for cpu, d in phase_cpus(result, phase):
            r = osnoise_row(cpu, d, result)
            out.append(
                f"{cpu:>3} {r['Period']:<8} {r['Runtime']:>12.0f} {r['Noise']:>10.1f} "
                f"{r['% CPU Aval']:>11.5f} {'-':>10} {r['Max Single']:>10.1f} "
                + " ".join(f"{r[c]:>8d}" for c in OSNOISE_COUNTS)
            )
            if r["other"]:
                out.append(
                    f"    other causes on cpu{cpu}: " + ", ".join(f"{k} {v}" for k, v in sorted(r["other"].items()))
                )
    return "\n".join(out)


def format_report(result: dict) -> str:
    return "\n\n".join([oslat_table(result), cyclictest_lines(result), osnoise_table(result)])


def drain_durations(result: dict) -> dict[str, list[float]]:
    names = [p for p in PHASES if p in result["strategies"]]
    names += sorted(n for n in result["strategies"] if n not in names)
    return {name: sorted(result["strategies"][name]["drain_all"]["durations_s"]) for name in names}


def cdf_from_histogram(hist: dict[int, int]) -> tuple[list[int], list[float]]:
    """(bucket, fraction of wake-ups at or above it) for each bucket 0..max: a survival curve."""
    total = sum(hist.values())
    if not total:
        return [], []
    xs, ys, above = [], [], total
    for b in range(max(hist) + 1):
        xs.append(b)
        ys.append(above / total)
        above -= hist.get(b, 0)
    return xs, ys


def survival_curves(result: dict, cpu: int) -> list[tuple[int, str, dict, list, list]]:
    """(phase index, phase, the CPU's figures, xs, ys) of each phase's wake-up survival curve on
    `cpu`, for every phase that ran it (xs empty if it recorded no wake-up); the last bucket's
    width is drawn too, as it holds the worst wake-ups. What the PNG and the HTML page draw."""
    bucket = result.get("hist_bucket_kernel_us", 1)
    curves = []
    for i, phase in enumerate(ordered_phases(result)):
        d = result["phases"][phase]["cpus"].get(str(cpu))
        if d is None:
            continue
        xs, ys = cdf_from_histogram(histogram(d))
        if xs:
            xs, ys = [*xs, xs[-1] + bucket], [*ys, ys[-1]]
        curves.append((i, phase, d, xs, ys))
    return curves


def curve_label(result: dict, phase: str, d: dict) -> str:
    return f"{phase} (n={d['runs']}, max {kus(result, d['wake_latency_max_s']):.1f} us)"
