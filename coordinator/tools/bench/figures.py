"""`pcpsim bench`: how close pcpsim runs to the floor of Python, gRPC and the machine.

Every figure is measured against a floor taken in the same run (and, where it is
cheap, interleaved with it so drift cancels), and reported as a ratio with a target:

1. pcp fast path: an rmqueue + free_unref_page pair on a warmed PerCpuPages over an
   in-process Zone, against a bare list append + pop pair. Best of N timing loops,
   the measurement and its floor interleaved. Target <= 15x. The same pair with the
   node's metrics collector registered against without: target <= 1.1x (a scrape's
   own cost is reported in the note; it runs once per scrape interval, not per pair).
2. Remote drain of one CPU: the coordinator's own drain_pages_zone of a housekeeping
   CPU (DrainAllPages, remote strategy), as coordinator.drain.drainer times it for that CPU:
   PcpLockDrain and the commit on its PcpControl stream to the node, then the free into
   the zone under zone->lock. Floor: one round trip on an open PcpControl stream to the
   same node of the drainer's kind (AioReplyStream; an unlock with token 0, refused as
   INVALID_ARGUMENT but a full round trip that leaves the stream open), interleaved
   with the drains; a sync stream's round trip is reported alongside. The cluster runs
   with a tiny time scale (modeled sleeps ~0), so what is measured is simulator
   overhead. The node is kept paused; before each drain it is resumed until its pcp
   holds at least a batch, then paused again, so every timed drain moves real pages
   (the page count is reported). Medians. Target <= 4x (two round trips and the zone's
   own work).
3. drain_all_pages scaling, N CPUs (1, 2, 4, 8, 16, 32; quick 1, 2, 4, 8), both
   strategies, force_all_cpus over idle CPUs (role "idle": nothing runs, pcp empty),
   tiny time scale: the per-CPU cost is then the strategy's protocol overhead. The
   slope of a least-squares fit of the median drain time (the coordinator's own
   record) against N, per strategy, against the stream round trip; and the ratio of
   the two slopes, workqueue / remote. No targets (informational).
4. Noise floor: p99 wake-up lateness of the isolated-preemptible latency task with no
   drains (a housekeeping + isolated-preemptible cluster, default time scale, read
   via GetStats), against a bare periodic timer of the same kind in the same node
   process over the same window (node.wake_probe: a thread waiting on a
   threading.Condition until absolute 20 ms deadlines, as node/cpu.py does, 0.25 ms
   ahead of the task's, so a burst of machine load hits both). Target <= 1.2x. The same bare timer run in
   this (idle) process is reported alongside.
5. Zone service throughput: Rmqueue + FreePages pairs from 8 concurrent client
   processes, each with its own ZoneStream to the coordinator (tiny time scale; the
   cluster's one housekeeping CPU is paused), in operations per second, against the
   floor rate of one client's round trip on a trivial request on the same kind of
   stream (a ZoneRequest naming no operation, refused without touching zone->lock):
   1 / RTT. Target >= 0.5x. On a 2-core machine 8 clients and the coordinator share
   two cores, so the floor rate is what one stream can do, not what the machine can.
6. Scale: coordinator.tools.bench.scale (64 CPUs for 60 s; quick 16 for 10 s). With
   `--engine virtual`: coordinator.tools.bench.virtual_scale instead (a compare phase of
   `compare --cpus N` under virtual time at 256 and 1,024 CPUs, each in a child process; quick 32).
7-8. The virtual engine (docs/engine.md): its CPU time per event against a bare heapq pair, and
   its speed against the wall engine on the same workload and span of kernel time, at 4 CPUs
   (full: and 64): coordinator.tools.bench.engine.
9. A seed sweep's seeds per second against the wall engine's for the same runs:
   coordinator.tools.bench.sweep.
"""

import tempfile
import time

from coordinator.tools.bench import virtual_scale
from coordinator.tools.bench.drain_one import bench_remote_drain_and_zone
from coordinator.tools.bench.engine import bench_engine
from coordinator.tools.bench.fast_path import bench_fast_path
from coordinator.tools.bench.figure import Figure, log, result_json
from coordinator.tools.bench.noise import bench_noise
from coordinator.tools.bench.scale import bench_scale
from coordinator.tools.bench.scaling import bench_scaling
from coordinator.tools.bench.steps import ENGINES, STEPS
from coordinator.tools.bench.streams import TINY_TIME_SCALE
from coordinator.tools.bench.sweep import bench_sweep
from coordinator.tools.progress import Progress

# How long a run takes (docs/benchmarks.md), for the progress line's remaining time.
QUICK_ESTIMATE_S = 115.0
FULL_ESTIMATE_S = 380.0


def run_bench(
    quick: bool,
    run_dir: str | None = None,
    plot_path: str | None = None,
    engine: str = "wall",
    only: tuple[str, ...] = STEPS,
    virtual_strategy: str = virtual_scale.STRATEGY,
) -> dict:
    """Every figure, or the steps `only` names; the scale figure on `engine`."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: {', '.join(ENGINES)}")
    if not only or any(name not in STEPS for name in only):
        raise ValueError(f"--only takes some of {', '.join(STEPS)}, got {', '.join(only) or 'none'}")
    run_dir = run_dir or tempfile.mkdtemp(prefix="pcpsim-bench-")
    t0 = time.monotonic()
    figures: list[Figure] = []
    detail: dict = {}
    scale = (
        ("scale", "scale", lambda: bench_scale(quick, run_dir))
        if engine == "wall"
        else (
            "scale (virtual engine)",
            "virtual_scale",
            lambda: virtual_scale.bench_virtual_scale(quick, virtual_strategy),
        )
    )
    every = {  # (what, result key, function returning (figures, detail))
        "fast-path": ("pcp fast path", None, lambda: (bench_fast_path(quick), None)),
        "drain-one": (
            "remote drain of one CPU and zone throughput",
            "streams",
            lambda: bench_remote_drain_and_zone(quick, run_dir),
        ),
        "scaling": ("drain_all_pages scaling", "scaling", lambda: bench_scaling(quick, run_dir, plot_path)),
        "noise": ("noise floor", "noise", lambda: bench_noise(quick, run_dir)),
        "scale": scale,
        "engine": ("virtual engine", "engine", lambda: bench_engine(quick, run_dir)),
        "sweep": ("seed sweep", "sweep", lambda: bench_sweep(quick)),
    }
    steps = [every[name] for name in STEPS if name in only]
    progress = Progress(len(steps), QUICK_ESTIMATE_S if quick else FULL_ESTIMATE_S)
    try:
        for i, (name, key, fn) in enumerate(steps, 1):
            log(f"[{i}/{len(steps)}] {name} (elapsed {time.monotonic() - t0:.0f}s)")
            progress.update(i - 1, name, "measuring")
            figs, d = fn()
            figures.extend(figs)
            if key:
                detail[key] = d
    finally:
        progress.done()
    log(f"done in {time.monotonic() - t0:.0f}s; process logs in {run_dir}")
    return result_json(
        figures,
        quick,
        {
            "run_dir": run_dir,
            "elapsed_s": time.monotonic() - t0,
            "time_scale_tiny": TINY_TIME_SCALE,
            "engine": engine,
            "only": list(only),
            "detail": detail,
        },
    )
