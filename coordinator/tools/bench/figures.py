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
6. Scale: coordinator.tools.bench.scale (64 CPUs for 60 s; quick 16 for 10 s).
"""

import asyncio
import math
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
import types

from coordinator.tools.bench.figure import Figure, linear_fit, log, result_json
from coordinator.tools.bench.scale import bench_scale
from coordinator.tools.cluster import ClusterConfig, LocalCluster
from coordinator.tools.stats import percentile
from node import wake_probe
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.mm.constants import MIGRATE_MOVABLE
from node.shared import security

TINY_TIME_SCALE = 1e-6  # modeled sleeps ~0: what remains is simulator overhead
FULL_SCALING_NS = (1, 2, 4, 8, 16, 32)
QUICK_SCALING_NS = (1, 2, 4, 8)
TIMER_PERIOD_S = 0.020
ZONE_CLIENTS = 8


# ------------------------------------------------------------------ 1. pcp fast path
def _pcp_runtime(with_metrics: bool):
    """A node's pcp, zone and (optionally) its metrics collector, as node.runtime builds them,
    without starting any thread."""
    from prometheus_client import CollectorRegistry, generate_latest

    from node.alloc import PageAllocator
    from node.cpu import Cpu
    from node.metrics import NodeMetrics
    from node.mm.pcp import PerCpuPages, free_unref_page, rmqueue
    from node.mm.zone import Zone
    from node.remote_lock import RemotePcpLock

    zone = Zone(0, 262144, 4)
    pcp = PerCpuPages(1, high=518, batch=63)
    cpu = Cpu(1, clock=time.monotonic, sleep=lambda s: None)
    rt = types.SimpleNamespace(
        cpu_id=1,
        role="housekeeping",
        zone=zone,
        pcp=pcp,
        cpu=cpu,
        alloc=PageAllocator(cpu, pcp, zone, coordinator_stub=None),
        remote_lock=RemotePcpLock(pcp, time.monotonic),
        task=None,
        irq=None,
        rejoins=0,
        lease_left=lambda: 1.0,
    )
    scrape = None
    if with_metrics:
        registry = CollectorRegistry()
        metrics = NodeMetrics(registry, rt)
        cpu.on_work_done = metrics.work_done
        rt.remote_lock.on_wait = metrics.lock_wait.observe
        rt.remote_lock.on_hold = metrics.lock_hold.observe
        scrape = lambda: generate_latest(registry)  # noqa: E731
    # Warm: the first rmqueue refills a batch from the zone, so the list is non-empty.
    pfn = rmqueue(zone, pcp, 0, MIGRATE_MOVABLE)
    if pfn is None:
        raise RuntimeError("rmqueue found no page in a fresh zone")
    free_unref_page(zone, pcp, pfn, 0, MIGRATE_MOVABLE)
    assert pcp.count > 0
    return zone, pcp, scrape


def _time_pairs(zone, pcp, ops: int) -> float:
    from node.mm.pcp import free_unref_page, rmqueue

    mt = MIGRATE_MOVABLE
    t0 = time.thread_time_ns()
    for _ in range(ops):
        pfn = rmqueue(zone, pcp, 0, mt)
        if pfn is None:  # cannot happen: each page goes back before the next is taken
            raise RuntimeError("rmqueue found no page")
        free_unref_page(zone, pcp, pfn, 0, mt)
    return (time.thread_time_ns() - t0) / ops * 1e-9


def _time_list(ops: int) -> float:
    lst = [1, 2, 3]
    t0 = time.thread_time_ns()
    for _ in range(ops):
        lst.append(7)
        lst.pop()
    return (time.thread_time_ns() - t0) / ops * 1e-9


def bench_fast_path(quick: bool) -> list[Figure]:
    # Many short loops rather than a few long ones: the best of them is one that no other process on this
    # shared machine interrupted, for the pair and the floor alike.
    ops, repeats = (20_000, 60) if quick else (50_000, 100)
    bare = _pcp_runtime(False)
    metered = _pcp_runtime(True)
    best = {"list": math.inf, "pair": math.inf, "metrics": math.inf}
    for _ in range(repeats):  # interleaved: each repeat times all three back to back
        best["list"] = min(best["list"], _time_list(ops))
        best["pair"] = min(best["pair"], _time_pairs(bare[0], bare[1], ops))
        best["metrics"] = min(best["metrics"], _time_pairs(metered[0], metered[1], ops))
    scrape = metered[2]
    t0 = time.perf_counter_ns()
    for _ in range(20):
        scrape()
    scrape_s = (time.perf_counter_ns() - t0) / 20 * 1e-9
    return [
        Figure(
            "pcp alloc+free pair vs list append+pop",
            best["pair"],
            best["list"],
            "s",
            "<= 15",
            f"best of {repeats} loops of {ops} pairs, interleaved",
        ),
        Figure(
            "pcp pair with node metrics vs without",
            best["metrics"],
            best["pair"],
            "s",
            "<= 1.1",
            f"NodeMetrics registered (hooks fire per period/work item, not per page); one scrape "
            f"(generate_latest) costs {scrape_s * 1e3:.2f} ms, outside the timed loops",
        ),
    ]


# ------------------------------------------------------------------ stream helpers
class _Stream:
    """One request/reply at a time on an open bidirectional stream (a sync ReplyStream)."""

    def __init__(self, open_call, name: str, timeout: float = 10.0):
        from node.shared.reply_stream import ReplyStream

        self.stream = ReplyStream(open_call, timeout, name)

    def request(self, msg):
        return self.stream.request(msg)

    def close(self):
        self.stream.close()


def _rtt_control(ctl, cpu: int) -> float:
    """One round trip on the PcpControl stream: an unlock with token 0, refused but answered."""
    t0 = time.perf_counter_ns()
    reply = ctl.request(pb.PcpControlRequest(unlock=pb.PcpUnlockRequest(cpu=cpu, token=0)))
    dt = (time.perf_counter_ns() - t0) * 1e-9
    if reply.code != "INVALID_ARGUMENT":
        raise RuntimeError(f"floor request answered {reply.code!r}, expected INVALID_ARGUMENT")
    return dt


def _rtt_zone(zs) -> float:
    """One round trip on a ZoneStream: a request naming no operation, refused before zone->lock."""
    t0 = time.perf_counter_ns()
    reply = zs.request(pb.ZoneRequest())
    dt = (time.perf_counter_ns() - t0) * 1e-9
    if reply.code != "INVALID_ARGUMENT":
        raise RuntimeError(f"floor request answered {reply.code!r}, expected INVALID_ARGUMENT")
    return dt


def _tiny_cluster(roles, run_dir: str, **kw) -> LocalCluster:
    return LocalCluster(
        ClusterConfig(
            roles=list(roles),
            coordinator_args=["--time-scale", str(TINY_TIME_SCALE), *kw.get("coordinator_args", [])],
            node_args=kw.get("node_args", []),
        ),
        run_dir,
    )


# ------------------------------------------------------------------ 2. remote drain + 5. zone throughput
def _refill(node_stub, cpu: int, want: int, timeout: float = 5.0) -> int:
    """Let the (paused) housekeeping CPU run until its pcp holds `want` pages, then pause it."""
    node_stub.SetRunState(pb.RunStateRequest(cpu=cpu, paused=False), timeout=10.0)
    deadline = time.monotonic() + timeout
    try:
        while True:
            count = node_stub.GetPcp(pb.CpuRequest(cpu=cpu), timeout=5.0).count
            if count >= want or time.monotonic() > deadline:
                break
            time.sleep(0.002)
    finally:
        node_stub.SetRunState(pb.RunStateRequest(cpu=cpu, paused=True), timeout=10.0)
    return node_stub.GetPcp(pb.CpuRequest(cpu=cpu), timeout=5.0).count


class _AioControl:
    """A PcpControl stream of the drainer's kind (AioReplyStream, as coordinator.membership opens one
    per member), on an event loop of its own so this synchronous bench can time round trips on it."""

    def __init__(self, address: str, sec):
        from node.shared.reply_stream import AioReplyStream

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bench-aio", daemon=True)
        self._thread.start()

        async def open_stream():
            self._channel = security.aio_channel(address, sec)
            return AioReplyStream(pb_grpc.NodeStub(self._channel).PcpControl, 10.0, "bench-aio-pcp-control")

        self._stream = self._run(open_stream())

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30.0)

    def rtt(self, cpu: int) -> float:
        """One round trip, timed on the loop: an unlock with token 0, refused but answered."""

        async def once():
            t0 = time.perf_counter_ns()
            reply = await self._stream.request(pb.PcpControlRequest(unlock=pb.PcpUnlockRequest(cpu=cpu, token=0)))
            return (time.perf_counter_ns() - t0) * 1e-9, reply.code

        dt, code = self._run(once())
        if code != "INVALID_ARGUMENT":
            raise RuntimeError(f"floor request answered {code!r}, expected INVALID_ARGUMENT")
        return dt

    def close(self) -> None:
        async def close():
            self._stream.close()
            await self._channel.close()

        self._run(close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)
        self._loop.close()


def _drain_one(cstub, cpu: int) -> tuple[float, int]:
    """The coordinator's own drain_pages_zone of `cpu` (DrainAllPages, remote strategy): its duration
    for that CPU, as coordinator.drain.drainer times it (lock and take, commit, zone free), and base pages moved."""
    r = cstub.DrainAllPages(
        pb.DrainAllRequest(strategy=pb.STRATEGY_REMOTE, force_all_cpus=True, trigger=pb.TRIGGER_DEMAND), timeout=30.0
    )
    mine = [c for c in r.cpus if c.cpu == cpu]
    if r.status != pb.DrainAllReply.DONE or len(mine) != 1 or not mine[0].ok:
        raise RuntimeError(f"remote drain of cpu {cpu}: {pb.DrainAllReply.Status.Name(r.status)} {list(r.cpus)}")
    return mine[0].duration_s, mine[0].pages


def bench_remote_drain_and_zone(quick: bool, run_dir: str) -> tuple[list[Figure], dict]:
    iters = 60 if quick else 150
    with _tiny_cluster(["housekeeping"], os.path.join(run_dir, "drain-one")) as cluster:
        node = cluster.state().nodes[0]
        batch = cluster.state().batch
        with cluster.channel(node.address) as nch, cluster.channel(cluster.coordinator_address) as cch:
            nstub, cstub = pb_grpc.NodeStub(nch), pb_grpc.CoordinatorStub(cch)
            actl = _AioControl(node.address, cluster.security)
            ctl = _Stream(nstub.PcpControl, "bench-pcp-control")
            zs = _Stream(cstub.ZoneStream, "bench-zone")
            try:
                nstub.SetRunState(pb.RunStateRequest(cpu=0, paused=True), timeout=10.0)
                for _ in range(20):  # open and warm every stream, and the coordinator's to the node
                    actl.rtt(0)
                    _rtt_control(ctl, 0)
                    _rtt_zone(zs)
                _drain_one(cstub, 0)
                drains, floors, sync_floors, pages = [], [], [], []
                for _ in range(iters):
                    _refill(nstub, 0, batch)
                    floors.append(actl.rtt(0))  # interleaved: floor, drain, floor
                    dt, n = _drain_one(cstub, 0)
                    floors.append(actl.rtt(0))
                    sync_floors.append(_rtt_control(ctl, 0))
                    if n:
                        drains.append(dt)
                        pages.append(n)
                if not drains:
                    raise RuntimeError("the housekeeping CPU never put pages on its pcp")
                log(f"remote drain: {len(drains)} drains, median {statistics.median(pages):.0f} pages")
                zone_fig, zone_detail = _zone_throughput(
                    cluster.coordinator_address, cluster.security, node.incarnation, zs, quick
                )
            finally:
                actl.close()
                ctl.close()
                zs.close()
    floor = statistics.median(floors)
    figs = [
        Figure(
            "remote drain of one CPU vs stream RTT",
            statistics.median(drains),
            floor,
            "s",
            "<= 4",
            f"median of {len(drains)} drains of {statistics.median(pages):.0f} base pages each, timed by "
            f"the coordinator (lock and take, commit: 2 round trips on its PcpControl stream, then the "
            f"zone free); floor: one round trip on an AioReplyStream PcpControl stream, the drainer's "
            f"kind (a sync stream: {statistics.median(sync_floors) * 1e6:.0f} us); "
            f"time scale {TINY_TIME_SCALE:g}",
        ),
        zone_fig,
    ]
    detail = {
        "remote_drain": {"drains_s": drains, "pages": pages, "rtt_s": floors, "sync_rtt_s": sync_floors},
        "zone": zone_detail,
    }
    return figs, detail


def _zone_client(address: str, sec, incarnation: str, index: int, measure_s: float, ready, go, start_at, out) -> None:
    """One zone client process: Rmqueue + FreePages pairs (cpu 0, order 0) on its own ZoneStream,
    from the common start the parent sets once every client has warmed its stream."""
    from node.shared.reply_stream import ReplyStream

    with security.channel(address, sec) as ch:
        zs = ReplyStream(pb_grpc.CoordinatorStub(ch).ZoneStream, 10.0, f"bench-zone-{index}")
        ops, seq, errors = 0, 0, 0

        def pair(count: bool) -> int:
            nonlocal seq, errors
            seq += 1
            r = zs.request(
                pb.ZoneRequest(
                    rmqueue=pb.RmqueueRequest(
                        cpu=0,
                        order=0,
                        migratetype=MIGRATE_MOVABLE,
                        count=1,
                        incarnation=incarnation,
                        transfer_id=f"bench-z{index}-{os.getpid()}-{seq}a",
                    )
                )
            )
            if r.code or not r.rmqueue.pfn:
                errors += 1
                return 0
            pfn = r.rmqueue.pfn[0]
            f = zs.request(
                pb.ZoneRequest(
                    free=pb.FreePagesRequest(
                        cpu=0,
                        pages=pb.PageList(pfn=[pfn], order=[0], migratetype=[MIGRATE_MOVABLE]),
                        incarnation=incarnation,
                        transfer_id=f"bench-z{index}-{os.getpid()}-{seq}b",
                    )
                )
            )
            errors += bool(f.code)
            return 2

        for _ in range(20):  # warm the stream
            pair(False)
        ready.put(index)
        go.wait(120.0)
        while time.monotonic() < start_at.value:
            time.sleep(0.001)
        end_at = start_at.value + measure_s
        while time.monotonic() < end_at:
            ops += pair(True)
        zs.close()
    out.put((index, ops, errors))


def _zone_throughput(address: str, sec, incarnation: str, zs, quick: bool) -> tuple[Figure, dict]:
    measure_s = 5.0 if quick else 10.0
    floors = [_rtt_zone(zs) for _ in range(300)]
    ctx = multiprocessing.get_context("spawn")
    out, ready, go, start_at = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Value("d", 0.0)
    procs = [
        ctx.Process(
            target=_zone_client, args=(address, sec, incarnation, i, measure_s, ready, go, start_at, out), daemon=True
        )
        for i in range(ZONE_CLIENTS)
    ]
    for p in procs:
        p.start()
    for _ in procs:  # spawned, imported and warm, however long that takes on a loaded machine
        ready.get(timeout=120.0)
    start_at.value = time.monotonic() + 0.1
    go.set()
    results = [out.get(timeout=measure_s + 60.0) for _ in procs]
    for p in procs:
        p.join(10.0)
    floors += [_rtt_zone(zs) for _ in range(300)]
    rtt = statistics.median(floors)
    ops = sum(r[1] for r in results)
    errors = sum(r[2] for r in results)
    throughput = ops / measure_s
    fig = Figure(
        f"zone ops/s, {ZONE_CLIENTS} clients vs 1/RTT of one stream",
        throughput,
        1.0 / rtt,
        "ops/s",
        ">= 0.5",
        f"Rmqueue+FreePages pairs for {measure_s:g}s, {ZONE_CLIENTS} client processes on "
        f"{os.cpu_count()} cores; floor = 1/median RTT of a trivial ZoneStream request"
        + (f"; {errors} errors" if errors else ""),
    )
    return fig, {
        "ops": ops,
        "errors": errors,
        "measure_s": measure_s,
        "rtt_s": rtt,
        "per_client_ops": [r[1] for r in sorted(results)],
    }


# ------------------------------------------------------------------ 3. drain_all_pages scaling
def bench_scaling(quick: bool, run_dir: str, plot_path: str | None) -> tuple[list[Figure], dict]:
    ns = QUICK_SCALING_NS if quick else FULL_SCALING_NS
    reps = 7 if quick else 15
    med: dict[str, list[float]] = {"workqueue": [], "remote": []}
    rtts = []
    strategies = {"workqueue": pb.STRATEGY_WORKQUEUE, "remote": pb.STRATEGY_REMOTE}
    for n in ns:
        log(f"scaling: N={n}")
        with _tiny_cluster(["idle"] * n, os.path.join(run_dir, f"scale-{n}")) as cluster:
            node0 = cluster.state().nodes[0]
            with cluster.channel(cluster.coordinator_address) as cch, cluster.channel(node0.address) as nch:
                coord = pb_grpc.CoordinatorStub(cch)
                ctl = _Stream(pb_grpc.NodeStub(nch).PcpControl, "bench-pcp-control")
                try:
                    for _ in range(20):
                        _rtt_control(ctl, 0)
                    samples: dict[str, list[float]] = {k: [] for k in strategies}
                    for i in range(reps + 1):  # the first round warms every channel and stream
                        for name, strategy in strategies.items():
                            rtts.append(_rtt_control(ctl, 0))
                            r = coord.DrainAllPages(
                                pb.DrainAllRequest(strategy=strategy, force_all_cpus=True, trigger=pb.TRIGGER_DEMAND),
                                timeout=60.0,
                            )
                            if r.status != pb.DrainAllReply.DONE or len(r.cpus) != n:
                                raise RuntimeError(
                                    f"drain_all_pages {name} at N={n}: "
                                    f"{pb.DrainAllReply.Status.Name(r.status)}, {len(r.cpus)} CPUs"
                                )
                            if i:
                                samples[name].append(r.duration_s)
                finally:
                    ctl.close()
        for name in strategies:
            med[name].append(statistics.median(samples[name]))
    rtt = statistics.median(rtts)
    slopes = {name: linear_fit(list(ns), med[name]) for name in strategies}
    note = f"N = {list(ns)}, idle CPUs, force_all_cpus, median of {reps} per point, least-squares slope"
    figs = [
        Figure(f"drain_all_pages {name}: per-CPU slope vs stream RTT", slopes[name][0], rtt, "s", None, note)
        for name in strategies
    ]
    figs.append(
        Figure(
            "per-CPU slope workqueue / remote",
            slopes["workqueue"][0],
            slopes["remote"][0],
            "s",
            None,
            "ratio of the two slopes",
        )
    )
    detail = {
        "n": list(ns),
        "median_duration_s": med,
        "rtt_s": rtt,
        "fit": {k: {"slope_s": v[0], "intercept_s": v[1]} for k, v in slopes.items()},
    }
    if plot_path:
        from coordinator.tools.bench.plot import plot_scaling

        detail["plot"] = plot_scaling(detail, plot_path)
    return figs, detail


# ------------------------------------------------------------------ 4. noise floor
def bench_noise(quick: bool, run_dir: str) -> tuple[list[Figure], dict]:
    warmup_s, measure_s = (2.0, 30.0) if quick else (3.0, 60.0)
    roles = ["housekeeping", "isolated-preemptible"]
    probe_dir = os.path.join(run_dir, "noise-probe")
    os.makedirs(probe_dir, exist_ok=True)
    with LocalCluster(
        ClusterConfig(roles=roles, node_args=["--wake-probe", probe_dir]), os.path.join(run_dir, "noise")
    ) as cluster:
        node = next(n for n in cluster.state().nodes if n.role == pb.ROLE_ISOLATED_PREEMPTIBLE)
        with cluster.channel(node.address) as ch:
            stub = pb_grpc.NodeStub(ch)
            time.sleep(warmup_s)
            here = wake_probe.WakeProbe(TIMER_PERIOD_S, time.monotonic() + TIMER_PERIOD_S)
            start = time.monotonic()
            stub.GetStats(pb.StatsRequest(cpu=node.cpu, reset=True), timeout=10.0)
            here.start()
            time.sleep(measure_s)
            stats = stub.GetStats(pb.StatsRequest(cpu=node.cpu), timeout=10.0)
            end = time.monotonic()
            here.stop()
    # The node writes its probe's samples when it stops.
    bare = wake_probe.read(os.path.join(probe_dir, f"cpu{node.cpu}.json"), start, end)
    task = list(stats.task.wake_latency_s)
    p_task, p_bare = percentile(task, 99), percentile(bare, 99)
    fig = Figure(
        "latency task wake p99 (no drains) vs bare timer",
        p_task,
        p_bare,
        "s",
        "<= 1.2",
        f"{len(task)} task wake-ups vs {len(bare)} wake-ups of a bare timer thread in the same node "
        f"process (node.wake_probe, 0.25 ms ahead of each task wake) over the same {measure_s:g}s, period "
        f"{TIMER_PERIOD_S * 1e3:g} ms; the same timer in this (idle) process: p99 "
        f"{percentile(here.lateness, 99) * 1e3:.3f} ms",
    )
    return [fig], {
        "task_p50_s": percentile(task, 50),
        "task_p99_s": p_task,
        "bare_p50_s": percentile(bare, 50),
        "bare_p99_s": p_bare,
        "task_samples": len(task),
        "bare_samples": len(bare),
        "bench_process_timer_p50_s": percentile(here.lateness, 50),
        "bench_process_timer_p99_s": percentile(here.lateness, 99),
    }


# ------------------------------------------------------------------ the run
def run_bench(quick: bool, run_dir: str | None = None, plot_path: str | None = None) -> dict:
    run_dir = run_dir or tempfile.mkdtemp(prefix="pcpsim-bench-")
    t0 = time.monotonic()
    figures: list[Figure] = []
    detail: dict = {}
    steps = [  # (what, result key, function returning (figures, detail))
        ("pcp fast path", None, lambda: (bench_fast_path(quick), None)),
        ("remote drain of one CPU and zone throughput", "streams", lambda: bench_remote_drain_and_zone(quick, run_dir)),
        ("drain_all_pages scaling", "scaling", lambda: bench_scaling(quick, run_dir, plot_path)),
        ("noise floor", "noise", lambda: bench_noise(quick, run_dir)),
        ("scale", "scale", lambda: bench_scale(quick, run_dir)),
    ]
    for i, (name, key, fn) in enumerate(steps, 1):
        log(f"[{i}/{len(steps)}] {name} (elapsed {time.monotonic() - t0:.0f}s)")
        figs, d = fn()
        figures.extend(figs)
        if key:
            detail[key] = d
    log(f"done in {time.monotonic() - t0:.0f}s; process logs in {run_dir}")
    return result_json(
        figures,
        quick,
        {"run_dir": run_dir, "elapsed_s": time.monotonic() - t0, "time_scale_tiny": TINY_TIME_SCALE, "detail": detail},
    )
