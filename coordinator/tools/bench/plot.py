"""The drain_all_pages scaling curve of `pcpsim bench` as a PNG."""


def plot_scaling(scaling: dict, path: str) -> str:
    """Median drain_all_pages duration against N per strategy, with each least-squares line
    and the stream round trip's slope (one RTT per CPU) for reference. Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = scaling["n"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, marker in (("workqueue", "o"), ("remote", "s")):
        ys = [y * 1e3 for y in scaling["median_duration_s"][name]]
        fit = scaling["fit"][name]
        ax.plot(ns, ys, marker=marker, linestyle="", label=f"{name} (median)")
        ax.plot(
            ns,
            [(fit["slope_s"] * n + fit["intercept_s"]) * 1e3 for n in ns],
            linestyle="--",
            label=f"{name} fit: {fit['slope_s'] * 1e3:.3f} ms/CPU",
        )
    ax.plot(
        ns,
        [scaling["rtt_s"] * n * 1e3 for n in ns],
        color="grey",
        linestyle=":",
        label=f"1 stream RTT per CPU ({scaling['rtt_s'] * 1e3:.3f} ms)",
    )
    ax.set_xlabel("CPUs (idle, force_all_cpus)")
    ax.set_ylabel("drain_all_pages duration (ms wall)")
    ax.set_title("drain_all_pages scaling (tiny time scale: simulator overhead only)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
