"""Prometheus metrics: the collectors report what the model holds, labels stay bounded, promtool accepts the text.

Every test uses fresh CollectorRegistry objects (never the global one). Runtimes are
assembled from the real model objects (PerCpuPages, Zone, Cpu, PageAllocator,
RemotePcpLock, LatencyTask) without starting any thread or server, except the RPC
interceptor test, which needs a real grpc.aio server on 127.0.0.1.

`python -m tests.unit.test_metrics` measures what metrics cost the pcp fast path (not a test).
"""

import argparse
import asyncio
import shutil
import socket
import subprocess
import threading
import time
import types
import urllib.request

import grpc
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from coordinator.drain.record import CpuDrain, DrainRecord
from coordinator.membership import Member, Membership
from coordinator.metrics import CoordinatorCollector, DrainMetrics
from coordinator.zone_service import ZoneService
from node.alloc import PageAllocator
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.cpu import Cpu
from node.epoch import CoordinatorEpoch
from node.metrics import NodeMetrics
from node.mm.constants import (
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    MIGRATETYPE_NAMES,
    NR_LOWORDER_PCP_LISTS,
    pageblock_order,
    pindex_to_order,
)
from node.mm.lock import spin_locked
from node.mm.pcp import PerCpuPages, drain_pages_zone, rmqueue
from node.mm.pcp_free import free_unref_page
from node.mm.zone import Zone
from node.remote_lock import RemotePcpLock
from node.server import NodeServicer
from node.shared import exposition
from node.shared.cpulist import role_label
from node.shared.exposition import listen_address
from node.shared.faults import Faults
from node.shared.interceptors import ErrorsAndFaultsInterceptor
from node.shared.rpc_metrics import RpcMetricsInterceptor
from node.shared.timebase import CostModel
from node.tasks import LatencyTask
from tests.clock import FakeClock

ALLOWED_LABELS = {
    "cpu",
    "kind",
    "strategy",
    "trigger",
    "status",
    "cause",
    "reason",
    "path",
    "holder",
    "method",
    "code",
    "order",
    "migratetype",
    "role",
    "level",
}


def make_runtime(role="housekeeping", cpu_id=1, clock=time.monotonic, task=None):
    """The attributes NodeMetrics reads, built from the real model objects; nothing is started."""
    zone = Zone(0, 262144, 4)
    zone.watermark_failed = False  # the attribute node.zone_client.ZoneClient adds; never set here
    pcp = PerCpuPages(cpu_id, high=518, batch=63)
    cpu = Cpu(cpu_id, clock=clock, sleep=lambda s: None)
    return types.SimpleNamespace(
        cpu_id=cpu_id,
        role=role,
        zone=zone,
        pcp=pcp,
        cpu=cpu,
        alloc=PageAllocator(cpu, pcp, zone, coordinator_stub=None),
        remote_lock=RemotePcpLock(pcp, clock),
        task=task,
        irq=None,
        rejoins=0,
        lease_left=lambda: 1.0,
    )


def node_registry(rt):
    registry = CollectorRegistry()
    metrics = NodeMetrics(registry, rt)
    rt.cpu.on_work_done = metrics.work_done
    rt.remote_lock.on_wait = metrics.lock_wait.observe
    rt.remote_lock.on_hold = metrics.lock_hold.observe
    if rt.task is not None:
        rt.task.on_wake = metrics.task_wakeup.observe
    return registry, metrics


def value(registry, name, **labels):
    got = registry.get_sample_value(name, labels)
    assert got is not None, f"no sample {name}{labels}"
    return got


def churn(rt, n=1200):
    """Allocations and frees of mixed orders and migratetypes through the allocator, so lists fill and flush."""
    held = []
    kinds = [(0, MIGRATE_MOVABLE)] * 6 + [
        (0, MIGRATE_UNMOVABLE),
        (1, MIGRATE_MOVABLE),
        (3, MIGRATE_RECLAIMABLE),
        (0, MIGRATE_RECLAIMABLE),
        (pageblock_order, MIGRATE_MOVABLE),
        (pageblock_order, MIGRATE_UNMOVABLE),
    ]
    for i in range(n):
        order, mt = kinds[i % len(kinds)]
        pfn = rt.alloc.alloc_pages(order, mt)
        assert pfn is not None, f"allocation {i} of order {order} failed"
        held.append(pfn)
    for pfn in held[::2]:
        rt.alloc.free_pages(pfn)
    return held[1::2]


def test_pcp_gauges_and_counters_are_the_models_own():
    """After churn, every pcp gauge equals the PerCpuPages field and every counter its PcpStats field;
    the per-list gauges are base pages and add up to pcp->count, with the THP list reported as order 9."""
    rt = make_runtime()
    registry, _ = node_registry(rt)
    churn(rt)
    pcp, s = rt.pcp, rt.pcp.stats
    assert pcp.count and s.freed_high_pages and pcp.lists[NR_LOWORDER_PCP_LISTS], "churn must exercise the lists"
    cpu = "1"
    assert value(registry, "pcpsim_pcp_count_pages", cpu=cpu) == pcp.count
    assert value(registry, "pcpsim_pcp_high_pages", cpu=cpu) == 518
    assert value(registry, "pcpsim_pcp_batch_pages", cpu=cpu) == 63
    assert value(registry, "pcpsim_pcp_free_factor", cpu=cpu) == pcp.free_factor
    total = 0
    for pindex in range(NR_LOWORDER_PCP_LISTS):
        order = pindex_to_order(pindex)
        got = value(
            registry,
            "pcpsim_pcp_pages",
            cpu=cpu,
            order=str(order),
            migratetype=MIGRATETYPE_NAMES[pindex % MIGRATE_PCPTYPES],
        )
        assert got == len(pcp.lists[pindex]) << order
        total += got
    for mt in range(MIGRATE_PCPTYPES):
        want = sum(1 for m in pcp.thp_migratetype.values() if m == mt) << pageblock_order
        got = value(
            registry, "pcpsim_pcp_pages", cpu=cpu, order=str(pageblock_order), migratetype=MIGRATETYPE_NAMES[mt]
        )
        assert got == want
        total += got
    assert total == pcp.count
    assert value(registry, "pcpsim_pcp_refill_pages_total", cpu=cpu) == s.refill_pages
    assert value(registry, "pcpsim_pcp_refills_total", cpu=cpu) == s.refills
    assert value(registry, "pcpsim_pcp_freed_pages_total", cpu=cpu, reason="high") == s.freed_high_pages
    assert value(registry, "pcpsim_alloc_allocations_total", cpu=cpu) == rt.alloc.allocs
    assert value(registry, "pcpsim_alloc_frees_total", cpu=cpu) == rt.alloc.frees
    held = sum(1 << order for order, _ in rt.alloc.allocated.values())
    assert value(registry, "pcpsim_alloc_held_pages", cpu=cpu) == held
    rt.zone.lock_wait_s = 0.125  # as a driver's zone times it (node.zone_client, node.virtual.zone)
    assert value(registry, "pcpsim_zone_lock_wait_seconds_total", cpu=cpu) == 0.125


def test_trylock_failures_and_fallbacks_are_counted_by_path():
    """With the pcp lock held elsewhere, an allocation and a free each fail their trylock and fall back to
    the buddy; the counters say so, path by path."""
    rt = make_runtime()
    registry, _ = node_registry(rt)
    pfn = rmqueue(rt.zone, rt.pcp, 0, MIGRATE_MOVABLE)
    with spin_locked(rt.pcp.lock):
        assert rmqueue(rt.zone, rt.pcp, 0, MIGRATE_MOVABLE) is not None
        assert free_unref_page(rt.zone, rt.pcp, pfn, 0, MIGRATE_MOVABLE) == "trylock"
        assert value(registry, "pcpsim_pcp_locked", cpu="1") == 1
    for path in ("alloc", "free"):
        assert value(registry, "pcpsim_pcp_trylock_failures_total", cpu="1", path=path) == 1
        assert value(registry, "pcpsim_pcp_buddy_fallbacks_total", cpu="1", path=path) == 1


def test_drained_pages_count_both_strategies_and_remote_grants_are_timed():
    """A local drain (the kworker's drain_pages_zone) and a remote drain (lock_and_take + unlock freed) both
    add to freed_pages{reason=drain}; the remote grant observes one lock wait and one lock hold."""
    clock = FakeClock()
    rt = make_runtime(clock=clock)
    registry, _ = node_registry(rt)
    churn(rt, 600)
    local = drain_pages_zone(rt.zone, rt.pcp)
    assert local > 0
    churn(rt, 600)
    remote = rt.pcp.count

    async def remote_drain():
        token, pages, *_ = await rt.remote_lock.lock_and_take(lease_s=5.0, wait_timeout=1.0)
        clock.now += 0.004  # the drainer holds the lock for 4 ms
        await rt.remote_lock.unlock(token, commit=True)
        rt.zone.free_pcppages_bulk(pages)  # after the commit, as coordinator.drain.drainer does

    asyncio.run(remote_drain())
    assert value(registry, "pcpsim_pcp_freed_pages_total", cpu="1", reason="drain") == local + remote
    assert value(registry, "pcpsim_pcp_drains_total", cpu="1", holder="local") == 1
    assert value(registry, "pcpsim_pcp_drains_total", cpu="1", holder="remote") == 1
    assert value(registry, "pcpsim_pcp_lock_wait_seconds_count", cpu="1", holder="remote") == 1
    assert value(registry, "pcpsim_pcp_lock_hold_seconds_count", cpu="1", holder="remote") == 1
    assert value(registry, "pcpsim_pcp_lock_hold_seconds_sum", cpu="1", holder="remote") == pytest.approx(0.004)
    assert value(registry, "pcpsim_pcp_lock_hold_seconds_bucket", cpu="1", holder="remote", le="0.005") == 1
    assert value(registry, "pcpsim_pcp_lock_hold_seconds_bucket", cpu="1", holder="remote", le="0.003") == 0


def test_work_items_observe_queue_delay_and_run_time_once_each():
    """Each work item run on the CPU is counted queued and run, and observed once in each histogram."""
    clock = FakeClock()
    rt = make_runtime(clock=clock)
    registry, _ = node_registry(rt)

    def work():
        clock.now += 0.012  # 12 ms of work
        return 0

    rt.cpu.queue_work("workqueue", work)
    rt.cpu.queue_work("workqueue", work)
    assert value(registry, "pcpsim_workqueue_pending_items", cpu="1") == 2
    clock.now += 0.003
    rt.cpu.preempt_point()  # the kworker runs both items here
    assert value(registry, "pcpsim_workqueue_items_queued_total", cpu="1") == 2
    assert value(registry, "pcpsim_workqueue_items_run_total", cpu="1") == 2
    assert value(registry, "pcpsim_workqueue_pending_items", cpu="1") == 0
    assert value(registry, "pcpsim_workqueue_run_seconds_count", cpu="1") == 2
    assert value(registry, "pcpsim_workqueue_run_seconds_sum", cpu="1") == pytest.approx(0.024)
    # The second item waited for the first: 3 ms + 15 ms.
    assert value(registry, "pcpsim_workqueue_queue_delay_seconds_sum", cpu="1") == pytest.approx(0.003 + 0.015)


class StepCpu:
    """What LatencyTask.step needs of a CPU, on a fake clock: occupy advances it."""

    def __init__(self, clock, noise):
        self.clock = clock
        self.noise = noise

    def occupy(self, seconds):
        self.clock.now += seconds

    def user(self, seconds):
        self.occupy(seconds)

    def preempt_point(self):
        pass


def test_task_counters_are_lifetime_values_that_survive_a_stats_reset():
    """Wake-up lateness is observed once per period, and runs, misses and stolen time by cause are
    monotonic: GetStats(reset=True) (task.reset_stats) resets the window, not the metrics."""
    from node.cpu import NoiseLog

    clock = FakeClock()
    alloc = types.SimpleNamespace(lock_contention_s=0.0, zone_lock_wait_s=0.0)
    task = LatencyTask("rt", period=0.25, busy=0.15, deadline=0.2, allocs=0, alloc=alloc, clock=clock, rt=True)
    rt = make_runtime(role="isolated-rt", cpu_id=3, clock=clock, task=task)
    registry, _ = node_registry(rt)
    noise = NoiseLog()
    cpu = StepCpu(clock, noise)
    for i in range(3):
        clock.now = task.next_wake + 0.002  # 2 ms late
        noise.add(clock.now, clock.now + 0.010, "workqueue")
        clock.now += 0.010  # 10 ms of drain work before the task runs its busy phase
        task.step(cpu)
        if i == 1:
            task.reset_stats()
    labels = {"cpu": "3", "kind": "rt"}
    assert task.window.runs == 1
    assert value(registry, "pcpsim_task_runs_total", **labels) == 3
    assert value(registry, "pcpsim_task_wakeup_latency_seconds_count", **labels) == 3
    assert value(registry, "pcpsim_task_wakeup_latency_seconds_bucket", le="0.015", **labels) == 3
    assert value(registry, "pcpsim_task_wakeup_latency_seconds_bucket", le="0.01", **labels) == 0
    assert value(registry, "pcpsim_task_deadline_misses_total", **labels) == 0
    assert value(registry, "pcpsim_task_noise_events_total", cause="workqueue", **labels) == 3
    assert value(registry, "pcpsim_task_stolen_seconds_total", cause="workqueue", **labels) == pytest.approx(0.030)
    assert value(registry, "pcpsim_task_stolen_seconds_total", cause="irq", **labels) == 0
    for cause in ("workqueue", "zone_lock", "none"):  # every cause exported, none of them missed yet
        assert value(registry, "pcpsim_task_deadline_misses_by_cause_total", cause=cause, **labels) == 0
    assert value(registry, "pcpsim_task_max_single_noise_seconds", **labels) == pytest.approx(0.010)


def coordinator_registry(nr_cpus=4):
    zone = Zone(1 << 20, 262144, nr_cpus)
    zs = ZoneService(zone, CostModel(), sleep=lambda s: None)
    membership = Membership(nr_cpus, clock=FakeClock())
    drainer = types.SimpleNamespace(pcpu_drain_mutex=asyncio.Lock())
    registry = CollectorRegistry()
    drains = DrainMetrics(registry, nr_cpus)
    registry.register(CoordinatorCollector(zs, membership, drainer, 250.0))
    return registry, drains, zs, membership


def test_zone_and_membership_are_read_at_scrape_time():
    """Zone gauges follow the Zone; membership reports up/role per CPU, unregistered CPUs as down."""
    registry, _, zs, membership = coordinator_registry()
    z = zs.zone
    zs.preallocate(5000)
    pages = zs.rmqueue(0, 0, MIGRATE_MOVABLE, 63, "t1", "i0")
    assert len(pages.pfns) == 63
    assert value(registry, "pcpsim_zone_free_pages") == z.free_pages == 262144 - 5000 - 63
    assert value(registry, "pcpsim_zone_managed_pages") == 262144
    for order in range(11):
        assert value(registry, "pcpsim_zone_free_blocks", order=str(order)) == z.nr_free(order)
    for level in ("min", "low", "high"):
        assert value(registry, "pcpsim_zone_watermark_pages", level=level) == z.watermark[level]
    assert value(registry, "pcpsim_zone_reclaim_active") == 0
    assert value(registry, "pcpsim_time_scale_ratio") == 250.0
    assert value(registry, "pcpsim_zone_lock_modeled_hold_seconds_total") == pytest.approx(
        zs.cost.wall(zs.cost.rmqueue_hold_us(63))  # the one refill above (no preallocate hold)
    )
    now = membership.clock()
    membership.members[2] = Member(
        2, "127.0.0.1:1", pb.ROLE_ISOLATED_RT, None, None, now - 0.3, pcp_count=7, registrations=2
    )
    assert value(registry, "pcpsim_node_up", cpu="2", role="isolated-rt") == 1
    assert value(registry, "pcpsim_node_up", cpu="0", role="unregistered") == 0
    assert value(registry, "pcpsim_node_heartbeat_age_seconds", cpu="2") == pytest.approx(0.3)
    assert value(registry, "pcpsim_node_registrations_total", cpu="2") == 2
    assert value(registry, "pcpsim_node_reported_pcp_count_pages", cpu="2") == 7
    assert value(registry, "pcpsim_node_offline", cpu="2") == 0
    membership.members[2].cpu_offline = True  # `pcpsim cpu offline 2`: still up, out of the drains
    assert value(registry, "pcpsim_node_offline", cpu="2") == 1
    assert value(registry, "pcpsim_node_up", cpu="2", role="isolated-rt") == 1


def test_drain_records_are_observed_once_per_drain_and_cpu():
    """A finished drain adds one to its status, one duration observation, and each CPU's pages; a skipped
    drain only counts."""
    registry, drains, _, _ = coordinator_registry()
    rec = DrainRecord(
        pb.DrainAllReply.FAILED,
        pb.STRATEGY_WORKQUEUE,
        pb.TRIGGER_RECLAIM,
        0.0,
        duration_s=0.04,
        mutex_wait_s=0.007,
        cpus=[
            CpuDrain(1, pages=300, duration_s=0.02, wait_s=0.015),
            CpuDrain(3, pages=0, duration_s=0.04, ok=False, error="flush timed out"),
        ],
    )
    drains.observe(rec)
    drains.observe(DrainRecord(pb.DrainAllReply.SKIPPED, pb.STRATEGY_WORKQUEUE, pb.TRIGGER_RECLAIM, 0.0))
    wq = {"strategy": "workqueue"}
    assert value(registry, "pcpsim_drain_all_total", status="failed", trigger="reclaim", **wq) == 1
    assert value(registry, "pcpsim_drain_all_total", status="skipped", trigger="reclaim", **wq) == 1
    assert value(registry, "pcpsim_drain_all_total", status="done", trigger="reclaim", **wq) == 0
    assert value(registry, "pcpsim_drain_all_duration_seconds_count", trigger="reclaim", **wq) == 1
    assert value(registry, "pcpsim_drain_all_mutex_wait_seconds_count", trigger="reclaim", **wq) == 1
    assert value(registry, "pcpsim_drain_all_mutex_wait_seconds_sum", trigger="reclaim", **wq) == pytest.approx(0.007)
    assert value(registry, "pcpsim_drain_pages_total", cpu="1", **wq) == 300
    assert value(registry, "pcpsim_drain_cpu_wait_seconds_sum", cpu="1", **wq) == pytest.approx(0.015)
    assert value(registry, "pcpsim_drain_cpu_failures_total", cpu="3", **wq) == 1
    assert value(registry, "pcpsim_drain_pages_total", cpu="1", strategy="remote") == 0


def all_registries():
    rt = make_runtime(role="isolated-rt", task=LatencyTask("rt", 0.25, 0.15, 0.2, 0, None, time.monotonic, True))
    node, _ = node_registry(rt)
    churn(rt, 200)
    coord, drains, _, _ = coordinator_registry()
    drains.observe(
        DrainRecord(
            pb.DrainAllReply.DONE,
            pb.STRATEGY_REMOTE,
            pb.TRIGGER_DEMAND,
            0.0,
            0.01,
            cpus=[CpuDrain(0, pages=63, duration_s=0.01)],
        )
    )
    interceptor_registry = CollectorRegistry()
    RpcMetricsInterceptor(interceptor_registry, [pb.DESCRIPTOR.services_by_name["Node"]])
    return {"node": node, "coordinator": coord, "rpc": interceptor_registry}


def test_names_units_and_labels_follow_the_conventions():
    """Every metric is pcpsim_-prefixed, counters end in _total, and every label is from the bounded
    set (never a pfn); a CPU's pcp_pages series number 15 (12 low-order lists + THP by migratetype)."""
    for what, registry in all_registries().items():
        for family in registry.collect():
            assert family.name.startswith("pcpsim_"), family.name
            assert not family.name.endswith("_total") or family.type == "counter"
            for sample in family.samples:
                assert set(sample.labels) - {"le"} <= ALLOWED_LABELS, (what, sample)
                assert "pfn" not in sample.labels
                if family.type == "counter" and not sample.name.endswith("_created"):
                    assert sample.name.endswith("_total"), sample.name
                if family.name == "pcpsim_pcp_pages":
                    assert sample.labels["order"] in {"0", "1", "2", "3", "9"}
    node = all_registries()["node"]
    pcp_pages = next(f for f in node.collect() if f.name == "pcpsim_pcp_pages")
    assert len(pcp_pages.samples) == 15


def test_promtool_accepts_the_exposition_text():
    """`promtool check metrics` (lint included) finds nothing wrong with any process's /metrics text."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(
            "promtool is not on PATH: install the Debian package `prometheus` "
            "(apt-get install prometheus), which provides it"
        )
    for what, registry in all_registries().items():
        text = generate_latest(registry)
        proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=30)
        assert proc.returncode == 0, f"{what}: {proc.stdout.decode()}{proc.stderr.decode()}"


def test_metrics_listen_flag():
    """--metrics-listen takes HOST:PORT or off."""
    assert listen_address("127.0.0.1:0") == ("127.0.0.1", 0)
    assert listen_address("[::1]:9100") == ("::1", 9100)
    assert listen_address("off") is None
    for bad in ("9100", "host:", "host:x", ":1", "h:70000"):
        with pytest.raises(argparse.ArgumentTypeError):
            listen_address(bad)


def test_role_labels_are_the_cli_names():
    """Role label values are spelled as on the command line."""
    assert role_label(pb.ROLE_ISOLATED_RT) == "isolated-rt"
    assert role_label(pb.ROLE_ISOLATED_PREEMPTIBLE) == "isolated-preemptible"
    assert role_label(pb.ROLE_HOUSEKEEPING) == "housekeeping"


async def test_rpc_interceptor_counts_calls_by_method_and_status_code():
    """Served calls are counted by "Service/Method" and status code (OK and a domain error alike), each timed
    once; a call to a method the service does not have adds no series."""
    registry = CollectorRegistry()
    node_service = pb.DESCRIPTOR.services_by_name["Node"]
    server = grpc.aio.server(
        interceptors=[
            RpcMetricsInterceptor(registry, [node_service]),
            ErrorsAndFaultsInterceptor(Faults(), [node_service]),
        ]
    )
    pcp = PerCpuPages(0)
    lock = RemotePcpLock(pcp, time.monotonic)
    node = types.SimpleNamespace(cpu_id=0, pcp=pcp, remote_lock=lock, remote_drain=lock, epoch=CoordinatorEpoch())
    pb_grpc.add_NodeServicer_to_server(NodeServicer(node, Faults()), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.NodeStub(channel)
            await stub.GetPcp(pb.CpuRequest(cpu=0), timeout=5)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetPcp(pb.CpuRequest(cpu=5), timeout=5)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            bogus = channel.unary_unary("/pcpsim.v1.Node/NoSuchMethod")
            with pytest.raises(grpc.aio.AioRpcError):
                await bogus(b"", timeout=5)
    finally:
        await server.stop(None)
    assert value(registry, "pcpsim_rpc_requests_total", method="Node/GetPcp", code="OK") == 1
    assert value(registry, "pcpsim_rpc_requests_total", method="Node/GetPcp", code="INVALID_ARGUMENT") == 1
    assert value(registry, "pcpsim_rpc_duration_seconds_count", method="Node/GetPcp") == 2
    methods = {s.labels["method"] for f in registry.collect() for s in f.samples}
    assert "Node/NoSuchMethod" not in methods and not any("NoSuchMethod" in m for m in methods)


# ------------------------------------------------------------------------------ overhead (not a test)
def measure_overhead(ops: int = 200_000, scrape_every: int = 1000, repeats: int = 5) -> dict:
    """Time rmqueue + free_unref_page pairs on an in-process Zone, without metrics and with the node's
    metrics registered and scraped (generate_latest) every `scrape_every` pairs. Best of `repeats`."""

    def run(with_metrics: bool) -> float:
        rt = make_runtime()
        registry = node_registry(rt)[0] if with_metrics else None
        zone, pcp = rt.zone, rt.pcp
        t0 = time.perf_counter()
        for i in range(ops):
            pfn = rmqueue(zone, pcp, 0, MIGRATE_MOVABLE)
            free_unref_page(zone, pcp, pfn, 0, MIGRATE_MOVABLE)
            if registry is not None and i % scrape_every == 0:
                generate_latest(registry)
        return (time.perf_counter() - t0) / ops

    best = {False: float("inf"), True: float("inf")}
    for _ in range(repeats):
        for with_metrics in (False, True):
            best[with_metrics] = min(best[with_metrics], run(with_metrics))
    return {
        "ops": ops,
        "scrape_every": scrape_every,
        "bare_us": best[False] * 1e6,
        "with_metrics_us": best[True] * 1e6,
        "ratio": best[True] / best[False],
    }


if __name__ == "__main__":
    for every in (1000, 10**9):
        r = measure_overhead(scrape_every=every)
        scrapes = f"a scrape every {every} pairs" if every < r["ops"] else "one scrape"
        print(
            f"rmqueue+free_unref_page pair: {r['bare_us']:.2f} us bare, {r['with_metrics_us']:.2f} us with node "
            f"metrics registered and {scrapes}: ratio {r['ratio']:.3f} ({r['ops']} pairs, best of 5)"
        )


def test_a_metrics_endpoint_serves_until_closed_and_close_releases_its_port():
    """exposition.serve on port 0, scraped, then closed: close() (which wakes the server's poll so the
    process's exit does not wait for it) ends the serving thread and closes the listener."""
    endpoint = exposition.serve(("127.0.0.1", 0), exposition.process_registry())
    assert endpoint is not None
    host, port = endpoint.address.rsplit(":", 1)
    with urllib.request.urlopen(f"http://{endpoint.address}/metrics", timeout=5.0) as resp:
        assert b"process_cpu_seconds_total" in resp.read()
    serving = [t for t in threading.enumerate() if "serve_forever" in t.name]
    assert serving  # prometheus_client's thread, named after its target
    endpoint.close()
    for thread in serving:
        thread.join(5.0)
        assert not thread.is_alive()
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=1.0).close()
