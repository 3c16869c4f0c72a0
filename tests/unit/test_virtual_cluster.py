"""The whole cluster under virtual time (coordinator.tools.virtual_cluster): the coordinator's drain rules
and audit joined to the CPUs' node halves over the simulated network. A compare phase per strategy, short
(10 ms of kernel time), each run once per module; one seed gives the same bytes twice."""

import itertools
import json
import statistics

import pytest

from coordinator.pageset import Pageset
from coordinator.tools.chaos import scenario, virtual_runner
from coordinator.tools.cluster import ClusterConfig
from coordinator.tools.topology import DEFAULT_ROLES
from coordinator.tools.virtual_cluster import WholeCluster, machine_roles
from coordinator.tools.virtual_coordinator import Members
from coordinator.tools.virtual_peer import INCARNATION
from coordinator.tools.virtual_phase import default_config, run_phase
from node.api.v1 import pcpsim_pb2 as pb
from node.grants import base_pages
from node.mm.constants import MIGRATE_MOVABLE
from node.mm.lock import spin_is_locked, spin_trylock
from node.mm.pcp_high import PCP_BATCH_SCALE_MAX
from node.mm.watermark import pageset_batch
from node.mm.zone import ZONE_START_PFN, Zone, zone_pages
from node.virtual.drain import VirtualRemotePcpLock
from node.virtual.run import Options, kernel_s
from tests import hashseed
from tests.leaks import forbid_wall_clock_and_shared_random

STRATEGIES = ("workqueue", "remote", "rcu-swap")
# compare's figures are wall time: 2.5 s of measurement stand for 10 ms of kernel time, 0.5 s of warm-up
# for 2 ms; a drain every 600 us of kernel time on average (compare's 150 ms).
SHORT = {"measure_s": 2.5, "warmup_s": 0.5}


def phase(strategy: str, seed: int = 1):
    with pytest.MonkeyPatch.context() as mp:
        forbid_wall_clock_and_shared_random(mp)
        return run_phase(strategy, default_config(strategy, seed=seed, **SHORT))


@pytest.fixture(scope="module")
def phases():
    return {strategy: phase(strategy) for strategy in STRATEGIES}


def isolated_work_items(figures: dict) -> int:
    return figures["isolated_preemptible"]["drain_work_items"] + figures["isolated_rt"]["drain_work_items"]


def test_one_seed_gives_the_same_event_log_and_results_json_twice(phases):
    first, again = phases["remote"], phase("remote")
    assert again.cluster.nodes.text() == first.cluster.nodes.text()
    assert again.cluster.trace_text() == first.cluster.trace_text()
    assert again.figures == first.figures
    assert again.log_digest() == first.log_digest()
    assert phase("remote", seed=2).log_digest() != first.log_digest()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_drains_pages_and_its_audit_balances(phases, strategy):
    run = phases[strategy]
    figures = run.figures
    assert figures["audit"] == {"ok": True, "lost": 0, "duplicated": 0, "unexpected": 0, "errors": []}
    assert figures["drain_all"]["count"] > 10 and figures["drain_all_failed"] == 0
    assert figures["drain_rpc_errors"] == []
    nodes = run.cluster.nodes
    if strategy == "workqueue":
        assert sum(pcp.stats.freed_drain_pages for pcp in nodes.pcps) > 0
        assert not any(peer.work for peer in run.cluster.peers.values())  # every item flushed and forgotten
    else:
        assert sum(drain.drained_pages for drain in nodes.drains) > 0
    assert figures["isolated_preemptible"]["runs"] > 0 and figures["isolated_rt"]["runs"] > 0


def test_only_the_workqueue_strategy_runs_drain_work_on_isolated_cpus(phases):
    assert isolated_work_items(phases["workqueue"].figures) > 0
    assert isolated_work_items(phases["remote"].figures) == 0
    assert isolated_work_items(phases["rcu-swap"].figures) == 0
    assert all(cpu.drain_work_items == 0 for cpu in phases["remote"].cluster.nodes.cpus)


def test_under_remote_every_buddy_fallback_starts_while_a_drainer_holds_that_cpus_pcp_lock(phases):
    nodes = phases["remote"].cluster.nodes
    seen = 0
    for alloc, drain, pcp in zip(nodes.allocs, nodes.drains, nodes.pcps, strict=True):
        windows = [(g.granted_at, g.ended_at) for g in drain.records()]
        fallbacks = alloc.fallbacks.between(0.0, nodes.clock())
        assert all(any(start <= t0 < end for start, end in windows) for t0, _, _ in fallbacks)
        # A "free_list" stretch is a batched free that spun on the lock (6.1's free_unref_page_list):
        # a wait, not a failed trylock, so only the others are the stats' fallbacks.
        trylock_failed = [kind for _, _, kind in fallbacks if kind != "free_list"]
        assert len(trylock_failed) == pcp.stats.trylock_fail_alloc + pcp.stats.trylock_fail_free
        seen += len(trylock_failed)
    assert seen > 0


def test_a_remote_drain_holds_the_cpus_pcp_lock_from_its_grant_to_its_commit_and_trylocks_fail_in_between(
    monkeypatch,
):
    forbid_wall_clock_and_shared_random(monkeypatch)
    cluster = WholeCluster(DEFAULT_ROLES, seed=3)
    try:
        cluster.nodes.run(2e-3)
        records: list = []
        cluster.drain(pb.STRATEGY_REMOTE, lambda record, error: records.append((record, error)))
        drain = cluster.nodes.drains[0]  # a housekeeping CPU: its lists are never empty
        assert isinstance(drain, VirtualRemotePcpLock)
        while drain.held is None and cluster.queue.clock() < 3e-3:
            cluster.queue.step()
        grant, lock = drain.held, cluster.nodes.pcps[0].lock
        assert grant.granted_at == cluster.queue.clock() and spin_is_locked(lock)
        failures = lock.trylock_failures
        assert not spin_trylock(lock)  # the CPU's own trylock, at this very instant
        assert lock.trylock_failures == failures + 1
        while drain.held is grant:
            cluster.queue.step()
        assert (grant.outcome, grant.ended_at) == ("committed", cluster.queue.clock())
        assert grant.ended_at > grant.granted_at
        while not records:
            cluster.queue.step()
        ((record, error),) = records
        assert error is None and record.status == pb.DrainAllReply.DONE
        assert record.cpus[0].pages == drain.drained_pages > 0
    finally:
        cluster.close()


@pytest.mark.parametrize(("kernel", "chunked"), [("6.1", False), ("6.12", True), ("6.12-count-race", True)])
def test_a_remote_drain_of_a_full_pcp_takes_one_grant_per_chunk_under_v6_10_and_later(monkeypatch, kernel, chunked):
    """The whole path in virtual time (coordinator.drain.remote, NodePeer, VirtualRemotePcpLock) on an
    isolated CPU, parked, that holds 3 chunks' worth of pages and 20 more: under 6.12 and
    6.12-count-race each grant takes at most batch << 5 pages and ends (committed, the lock dropped)
    before the next is granted; under 6.1 one grant takes everything. Every page reaches the zone."""
    forbid_wall_clock_and_shared_random(monkeypatch)
    cluster = WholeCluster(DEFAULT_ROLES, seed=1, options=Options(kernel=kernel))
    try:
        cpu = 2
        cluster.nodes.run(2e-3)
        cluster.nodes.cpus[cpu].set_paused(True, by="test")
        cluster.nodes.run(cluster.queue.clock() + 5e-4)
        pcp, drain = cluster.nodes.pcps[cpu], cluster.nodes.drains[cpu]
        chunk = pcp.batch << PCP_BATCH_SCALE_MAX
        filled = 3 * chunk + 20 - pcp.count
        # As refills do: the zone hands the pages to this CPU, which keeps them on its lists.
        pfns = cluster.nodes.zone.rules.rmqueue(cpu, 0, MIGRATE_MOVABLE, filled, "test-fill", INCARNATION).value.pfns
        pcp.restore([(pfn, 0, MIGRATE_MOVABLE) for pfn in pfns])
        assert pcp.count == 3 * chunk + 20
        records: list = []
        cluster.drain(pb.STRATEGY_REMOTE, lambda record, error: records.append((record, error)))
        while not records:
            cluster.queue.step()
        ((record, error),) = records
        assert error is None and record.status == pb.DrainAllReply.DONE
        assert next(c.pages for c in record.cpus if c.cpu == cpu) == 3 * chunk + 20 and pcp.count == 0
        grants = drain.records()
        sizes = [base_pages(g.pages) for g in grants]
        assert sizes == ([chunk, chunk, chunk, 20] if chunked else [3 * chunk + 20])
        assert all(g.outcome == "committed" for g in grants) and drain.drains == 1
        assert all(a.ended_at < b.granted_at for a, b in itertools.pairwise(grants))
        assert cluster.audit().ok
    finally:
        cluster.close()


def test_bad_phase_configurations_are_refused_before_anything_runs():
    with pytest.raises(ValueError, match="not one of this compare's"):
        run_phase("rcu-swap", default_config("remote"))
    with pytest.raises(ValueError, match="at least 32 CPUs"):
        machine_roles(31)
    assert len(machine_roles(1024)) == 1024
    with pytest.raises(ValueError, match="at most 1024 CPUs, got 1025"):
        machine_roles(1025)


@pytest.mark.parametrize(
    ("n", "shares"),
    [
        (32, {"housekeeping": 2, "isolated-preemptible": 1, "isolated-rt": 1, "idle": 28}),
        (1024, {"housekeeping": 64, "isolated-preemptible": 32, "isolated-rt": 32, "idle": 896}),
        (100, {"housekeeping": 6, "isolated-preemptible": 3, "isolated-rt": 3, "idle": 88}),
    ],
)
def test_a_machine_layout_is_mostly_isolated_and_idle(n, shares):
    roles = machine_roles(n)
    assert len(roles) == n and {r: roles.count(r) for r in shares} == shares
    assert roles == sorted(roles, key=list(shares).index)  # housekeeping first, as compare's default layout


def digests() -> str:
    """A very short remote phase's log digest and results digest (2 ms of kernel time measured)."""
    import hashlib

    run = run_phase("remote", default_config("remote", measure_s=0.5, warmup_s=0.25))
    return f"{run.log_digest()} {hashlib.sha256(json.dumps(run.figures, sort_keys=True).encode()).hexdigest()}"


def test_a_phase_does_not_depend_on_the_process_hash_seed():
    """Two processes with different string hash salts: the same event log and results, byte for byte."""

    code = "from tests.unit.test_virtual_cluster import digests; print(digests())"
    outputs = hashseed.outputs(code)
    assert outputs == {digests()}


def test_a_compare_phase_runs_on_the_wall_clusters_zone_with_its_batch_and_high():
    """The wall compare's coordinator gets cluster up's --zone-mb and sizes the pageset from it
    (coordinator.__main__); a virtual phase must model the same zone, or every refill, free and drain
    moves other amounts (until 2026-12-04 it ran on 64 MiB: batch 3, high 80)."""
    nodes = WholeCluster(DEFAULT_ROLES, seed=1).nodes
    wall = Zone(ZONE_START_PFN, zone_pages(ClusterConfig(roles=list(DEFAULT_ROLES)).zone_mb), len(DEFAULT_ROLES))
    pageset = Pageset(wall, pageset_batch(wall.managed_pages), len(DEFAULT_ROLES))
    assert nodes.zone.zone.managed_pages == wall.managed_pages
    assert (nodes.batch, nodes.high) == (pageset.batch, pageset.high) == (63, 321)
    assert nodes.pcps[0].batch == 63 and nodes.pcps[0].high == 321


def test_a_chaos_scenarios_zone_size_and_use_are_the_virtual_runs_too():
    """tests/chaos/cma-by-a-replaced-coordinator.toml sets zone_mb 64 and zone_used 0.15, as the wall
    runner passes them to the coordinator (--zone-mb, --zone-used)."""
    run = virtual_runner.execute(scenario.load("tests/chaos/cma-by-a-replaced-coordinator.toml"), "remote")
    first = [e for e in run.transfers["transfers-coordinator.jsonl"] if e.get("epoch") == 1]
    assert first[0]["ev"] == "start" and first[1]["ev"] == "take" and first[1]["owner"] == -1
    assert sum(1 << order for _, order in first[1]["pages"]) == int(zone_pages(64) * 0.15)
    assert run.verdict.valid, json.dumps(run.verdict.to_json(), indent=1)


def test_a_virtual_node_beats_as_a_wall_node_does_every_50_ms_or_at_the_coordinators_slower_pace():
    """A wall node beats at its --heartbeat-ms (50 ms) or at the pace the coordinator sets for the
    cluster's size (n / 256 s, at most a quarter of the failure timeout), the longer (node.agent_rule).
    Until 2026-12-04 a virtual node beat at the coordinator's pace alone: 4 CPUs every 15.6 ms."""
    static = WholeCluster(DEFAULT_ROLES, seed=1)
    large = WholeCluster(machine_roles(64), seed=1)
    try:
        assert static.heartbeat_s == kernel_s(0.05)  # 4 / 256 s is shorter
        assert large.heartbeat_s == kernel_s(0.25)  # 64 / 256 s is longer
    finally:
        static.close()
        large.close()
    c = WholeCluster(DEFAULT_ROLES, seed=1, members=Members())
    try:
        c.nodes.run(kernel_s(1.0))  # a second of the rules' time: registration, then about 20 beats a CPU
        sent: dict[str, list[float]] = {}
        for line in c.trace:
            when, cpu, what = line.split(" ", 2)
            if what == "Heartbeat sent":
                sent.setdefault(cpu, []).append(float(when) * c.scale)
        assert sorted(sent) == ["cpu0", "cpu1", "cpu2", "cpu3"]
        for times in sent.values():
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert len(gaps) >= 10
            assert min(gaps) >= 0.05 and statistics.median(gaps) < 0.06, gaps
    finally:
        c.close()


@pytest.mark.parametrize(
    "kernel, rcu_swap, op, refusal",
    [
        ("5.19", False, "lock_drain", "runs kernel 5.19: its pcp is guarded by a local_lock no other CPU can take"),
        ("6.1", True, "lock_drain", "keeps its pcp lists behind an RCU pointer: there is no pcp lock to take"),
        ("6.1", False, "rcu_swap", "runs the v6.0 pcp spinlock, not RCU list sets"),
    ],
)
def test_a_virtual_cpu_refuses_a_drain_its_pcp_design_or_kernel_does_not_allow_as_the_wall_node_does(
    kernel, rcu_swap, op, refusal
):
    """node.remote_lock_rule.check_remote_lock and node.rcu_drain_rule.check_rcu_swap, which node.runtime
    asks too: a virtual CPU under 5.19 used to grant its local_lock'ed lists to a remote drainer."""
    c = WholeCluster(DEFAULT_ROLES, seed=1, rcu_swap=rcu_swap, options=Options(kernel=kernel))
    try:
        c.nodes.run(kernel_s(0.5))
        request = {
            "lock_drain": pb.PcpControlRequest(lock_drain=pb.PcpLockDrainRequest(cpu=0, lease_ms=100)),
            "rcu_swap": pb.PcpControlRequest(rcu_swap=pb.RcuSwapRequest(cpu=0, gp_timeout_ms=100, lease_ms=100)),
        }[op]
        replies: list = []
        c.peers[0].control(request).bind(replies.append)
        c.nodes.run(c.queue.clock() + kernel_s(0.1))
        assert [(r.code, refusal in r.error) for r in replies] == [("FAILED_PRECONDITION", True)], replies
        assert c.nodes.pcps[0].count > 0  # it had pages to give: the refusal is the design's, not an empty pcp
    finally:
        c.close()


@pytest.mark.parametrize("members", [None, Members()], ids=["static", "agents"])
def test_a_heartbeat_reply_tells_a_virtual_cpu_the_zones_reclaim_state_as_it_tells_a_wall_node(members):
    """coordinator.membership_rule.answer_heartbeat, which both coordinators answer with: the zone's free
    pages and ZONE_RECLAIM_ACTIVE reach a CPU that asks the zone nothing (idle CPUs), which node.agent
    applies to the wall node's ZoneClient; the virtual replies used to carry neither."""
    c = WholeCluster(["idle", "idle"], seed=1, members=members)
    try:
        c.nodes.run(kernel_s(0.5))
        zone = c.nodes.zone.zone
        assert not any(z.reclaim_active for z in c.nodes.zones)
        zone.reclaim_active = True  # as kswapd's balance_pgdat sets it; nothing on these CPUs asks the zone
        zone.free_pages -= 7  # what they are told of the free pages follows the zone too (no audit follows)
        c.nodes.run(c.queue.clock() + kernel_s(0.5))  # several heartbeats
        assert [(z.reclaim_active, z.free_pages) for z in c.nodes.zones] == [(True, zone.free_pages)] * 2
    finally:
        c.close()


def test_a_virtual_cpu_answers_a_bad_work_request_as_the_wall_node_does():
    """QueueWork and FlushWork reach a virtual CPU through node.server's checks and node.work_table's
    rule: an unknown kind or a timeout out of range is INVALID_ARGUMENT, a work id the CPU does not hold
    NOT_FOUND, and a flushed item is forgotten."""
    c = WholeCluster(DEFAULT_ROLES, seed=1)
    try:
        peer = c.peers[2]
        bad_kind = peer.call("QueueWork", pb.QueueWorkRequest(cpu=2, kind=pb.WORK_UNSPECIFIED))
        assert bad_kind.reply.code == "INVALID_ARGUMENT" and "work kind" in bad_kind.reply.detail
        unknown = peer.call("FlushWork", pb.FlushWorkRequest(cpu=2, work_id=999, timeout_ms=100))
        assert unknown.reply.code == "NOT_FOUND" and "no work item 999 on cpu 2" in unknown.reply.detail
        queued = peer.call("QueueWork", pb.QueueWorkRequest(cpu=2, kind=pb.WORK_DRAIN_LOCAL_PAGES))
        work_id = queued.reply.work_id
        no_wait = peer.call("FlushWork", pb.FlushWorkRequest(cpu=2, work_id=work_id, timeout_ms=0))
        assert no_wait.reply.code == "INVALID_ARGUMENT" and "timeout_ms" in no_wait.reply.detail
        flushed: list = []
        peer.call("FlushWork", pb.FlushWorkRequest(cpu=2, work_id=work_id, timeout_ms=10_000)).bind(flushed.append)
        c.nodes.run(c.queue.clock() + kernel_s(0.1))
        assert len(flushed) == 1 and flushed[0].done
        again = peer.call("FlushWork", pb.FlushWorkRequest(cpu=2, work_id=work_id, timeout_ms=100))
        assert again.reply.code == "NOT_FOUND"
    finally:
        c.close()
