"""PNG plots of a `pcpsim compare` results file (used by `pcpsim compare --json` and `pcpsim report`).

matplotlib is imported inside the functions, not at module level, so `import coordinator.tools.cli`
stays fast. Figures are drawn on an explicit Agg canvas (no pyplot, no global figure state).

- wake-up latency: one panel per latency CPU (the first two of each task's on a large machine),
  one survival curve per phase (fraction of wake-ups at least x kernel us late, log scale), so
  the noise floor and both strategies' tails sit side by side; the top axis gives the same
  latency in wall ms.
- drain_all_pages: duration CDF, one curve per strategy, wall ms (log) with kernel us on top.
"""

import os

from coordinator.tools import report

PHASE_STYLE = {
    "noise_floor": ("tab:gray", ":"),
    "workqueue": ("tab:red", "-"),
    "remote": ("tab:blue", "-"),
    "rcu-swap": ("tab:green", "-"),
}
# Curves drawn later are thinner, so identical curves (an RT task sees the same few
# buckets in every phase) stay visible as nested lines instead of hiding each other.
LINE_WIDTHS = (3.2, 2.2, 1.3, 1.0)


def plot_paths(json_path: str, out_dir: str | None = None) -> tuple[str, str]:
    """PATH.json -> (PATH-wakeup.png, PATH-drain.png), in out_dir if given."""
    base = json_path[:-5] if json_path.endswith(".json") else json_path
    if out_dir is not None:
        base = os.path.join(out_dir, os.path.basename(base))
    return base + "-wakeup.png", base + "-drain.png"


def _figure(width: float, height: float, ncols: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


# A panel per latency CPU is what a 4-CPU compare needs; a 1,024-CPU machine (`compare --cpus`) has 64
# latency CPUs, and a panel each made a PNG 42,000 pixels wide in 70 s of matplotlib.
PANELS_PER_ROLE = 2


def shown_cpus(result: dict) -> tuple[list[int], int]:
    """The latency CPUs the wake-up plot draws, the first PANELS_PER_ROLE of each role in CPU order, and
    how many latency CPUs there are in all."""
    roles: dict[int, str] = {}
    for phase in result["phases"].values():
        for c, d in phase["cpus"].items():
            roles.setdefault(int(c), d["role"])
    by_role: dict[str, list[int]] = {}
    for cpu in sorted(roles):
        by_role.setdefault(roles[cpu], []).append(cpu)
    return sorted(c for cpus in by_role.values() for c in cpus[:PANELS_PER_ROLE]), len(roles)


def plot_wakeup(result: dict, path: str) -> None:
    scale = result["time_scale"]
    cpus, latency_cpus = shown_cpus(result)
    fig, axes = _figure(6.0 * max(1, len(cpus)), 4.5, max(1, len(cpus)))
    # With no CPUs the figure still has one (empty) axis: zip stops at the shorter.
    for ax, cpu in zip(axes, cpus, strict=False):
        found = report.survival_curves(result, cpu)
        kind = found[-1][2]["role"] if found else ""
        for i, phase, d, xs, ys in found:
            if not xs:
                continue
            color, style = PHASE_STYLE.get(phase, (None, "--"))
            ax.step(
                xs,
                ys,
                where="post",
                color=color,
                linestyle=style,
                linewidth=LINE_WIDTHS[min(i, len(LINE_WIDTHS) - 1)],
                alpha=0.9,
                label=report.curve_label(result, phase, d),
            )
        ax.set_yscale("log")
        ax.set_xlim(left=0)
        ax.set_xlabel("wake-up latency (kernel us, 1 us buckets)")
        ax.set_ylabel("fraction of wake-ups with latency >= x")
        ax.set_title(f"cpu{cpu} ({kind})")
        ax.grid(True, which="both", alpha=0.3)
        top = ax.secondary_xaxis("top", functions=(lambda x: x * scale / 1e3, lambda x: x * 1e3 / scale))
        top.set_xlabel("wall ms")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(title="phase", fontsize="small")
    shown = (
        f" (the first {PANELS_PER_ROLE} of each task's CPUs, {latency_cpus} in all)" if len(cpus) < latency_cpus else ""
    )
    fig.suptitle(f"Wake-up latency of the isolated CPUs' tasks, per phase (survival curve){shown}")
    fig.savefig(path, dpi=110)


def _plain_log_ticks(axis) -> None:
    """Log-axis ticks at 1, 2, 5 x 10^n labelled as plain numbers (not 4x10^1)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def plot_drain(result: dict, path: str) -> None:
    scale = result["time_scale"]
    fig, (ax,) = _figure(7.5, 4.5)
    any_data = False
    for name, durations in report.drain_durations(result).items():
        color, style = PHASE_STYLE.get(name, (None, "-"))
        if not durations:
            ax.plot([], [], color=color, label=f"{name} (no completed drains)")
            continue
        any_data = True
        n = len(durations)
        ms = [x * 1e3 for x in durations]
        ax.step(
            ms,
            [(i + 1) / n for i in range(n)],
            where="post",
            color=color,
            linestyle=style,
            linewidth=1.6,
            label=f"{name} (n={n}, p50 {ms[(n - 1) // 2]:.1f} ms, max {ms[-1]:.1f} ms)",
        )
    if any_data:
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
    # created after set_xscale: a secondary axis resets its tickers when the parent's scale changes
    top = ax.secondary_xaxis("top", functions=(lambda x: x / scale * 1e3, lambda x: x * scale / 1e3))
    if any_data:
        _plain_log_ticks(top.xaxis)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("drain_all_pages duration (wall ms)")
    ax.set_ylabel("fraction of drains <= x")
    ax.set_title("drain_all_pages duration CDF per strategy")
    ax.grid(True, which="both", alpha=0.3)
    top.set_xlabel("kernel us")
    ax.legend(title="strategy", fontsize="small", loc="lower right")
    fig.savefig(path, dpi=110)


def write_plots(result: dict, json_path: str, out_dir: str | None = None) -> list[str]:
    """Both plots for `result`, named after json_path; returns the paths written."""
    wakeup, drain = plot_paths(json_path, out_dir)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    plot_wakeup(result, wakeup)
    plot_drain(result, drain)
    return [wakeup, drain]
