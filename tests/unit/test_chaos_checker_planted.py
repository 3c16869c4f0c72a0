"""Bugs the checker's evidence agreed on, planted: each is a violation every input of the checker once
agreed was fine (the final audit counts every page once, the transfer logs show no page given twice).
Planted here through a fake log or a patched rule, never a switch of the code under test."""

import os

import pytest

from coordinator.drain import drain_all
from coordinator.drain.record import CpuDrain
from coordinator.drain.remote import drain_remote
from coordinator.drain.workqueue import drain_workqueue
from coordinator.tools.chaos import scenario, transfers, virtual_runner
from coordinator.tools.chaos.checker import check
from node.api.v1 import pcpsim_pb2 as pb
from node.mm import zone_rules
from node.mm.constants import MIGRATE_MOVABLE
from tests.unit.test_chaos_checker import BOUND, LEASE, A, B, clean, clean_transfers, final, node

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def test_a_cpu_that_allocates_a_page_another_cpu_holds_is_invalid():
    """A remote drain's commit that the node logs (its pages leave it) while it keeps them on its lists:
    the drainer frees them, the zone gives pfn 5 to cpu0, and cpu1 allocates it from its lists. No page
    joins an owner twice, and a later kill of cpu1 (or a cpu_dead) would leave the final audit clean."""
    t = clean_transfers()
    t.insert(8, node(0.45, "refill", 0, A, pages=[[5, 0]]))
    t.insert(9, node(0.55, "alloc", 1, B, pfn=5, order=0))
    v = check(clean(), BOUND, LEASE, t)
    assert v.valid is False
    assert v.findings["pages_held_twice"] == ["pfn 5: cpu1 allocated it at 0.550s while cpu0 held it (since 0.450s)"]


def test_an_allocation_whose_lease_check_came_before_its_pages_refill_is_no_finding():
    """node.alloc stamps an allocation with its lease check, before the refill that brings its page: cpu1
    frees pfn 5 at 1.0, the zone gives it to cpu0 (its refill line, 1.1, is written before the allocation
    line, stamped 0.9). The page is looked at as of the refill, not as of the stamp."""
    refills = [node(0.1, "refill", 0, A, pages=[[0, 0]]), node(1.1, "refill", 0, A, pages=[[5, 0]])]
    cpu0 = transfers.mark_allocs([*refills, node(0.9, "alloc", 0, A, pfn=5, order=0)])
    cpu1 = [node(0.5, "refill", 1, B, pages=[[5, 0]]), node(1.0, "free", 1, B, pages=[[5, 0]])]
    events = sorted([{"t": 0.0, "ev": "start", "epoch": 1}, *cpu0, *cpu1], key=lambda e: e["t"])
    v = check(clean(), BOUND, LEASE, events)
    assert v.valid is True, v.findings
    del cpu0[2]["seen"]  # read at its stamp, the same allocation is a page another CPU held
    v = check(clean(), BOUND, LEASE, sorted([{"t": 0.0, "ev": "start"}, *cpu0, *cpu1], key=lambda e: e["t"]))
    assert v.findings["pages_held_twice"] == ["pfn 5: cpu0 allocated it at 0.900s while cpu1 held it (since 0.500s)"]


def test_a_page_the_zone_moved_to_the_system_unlogged_is_invalid():
    """Every page is still counted once by the zone's records (the audit is clean), but the system's share
    is one page more than the zone's transfer log ever gave it: a page leaked out of the allocator."""
    h = clean()
    final(h, "audit")["where"] = {"free": 99, "other": 1025, "cma": 0, "offline": 0}
    v = check(h, BOUND, LEASE, clean_transfers())
    assert v.valid is False
    assert v.findings["conservation"] == [
        "the final audit finds 1025 pages held as other, the zone's transfer log 1024"
    ]
    final(h, "audit")["where"]["other"] = 1024
    assert check(h, BOUND, LEASE, clean_transfers()).valid is True


def test_a_retried_free_that_leaks_a_page_to_the_system_is_caught_under_virtual_time(monkeypatch):
    """Planted in the zone's rules: a retried FreePages (its reply dropped) is answered as the first, and
    moves one free page to the system's share, recorded but not logged. The final audit counts it once (as
    the system's), so before the cross-check with the transfer log `rpc-drop-replies` was valid."""
    first = zone_rules.ZoneRules.free_pages

    def leaky(self, cpu, pages, transfer_id, incarnation, stream, commit=False):
        retry = self._replay((cpu, stream), incarnation, transfer_id, ("free", cpu, commit, tuple(pages)))
        if retry is not None:
            pfn = self.zone.rmqueue_buddy(0, MIGRATE_MOVABLE)
            if pfn is not None:
                self.owned[pfn] = (zone_rules.OTHER, 0)
        return first(self, cpu, pages, transfer_id, incarnation, stream, commit)

    monkeypatch.setattr(zone_rules.ZoneRules, "free_pages", leaky)
    sc = scenario.load(os.path.join(ROOT, "deploy", "chaos", "rpc-drop-replies.toml"))
    v = virtual_runner.run(sc, "remote")
    assert v.valid is False
    assert v.stats["audit"]["lost"] == 0 and v.stats["audit"]["duplicated"] == 0  # the audit alone: clean
    assert any("held as other" in f for f in v.findings["conservation"]), v.findings


# ------------------------------------------------------------------ a drain that skips a CPU
def drain_entries(cpus_marked, parts) -> list[dict]:
    """Drain 0 from 0.1 s to 0.2 s (its reply's marked CPUs and parts), as plan.drained writes it."""
    return [
        {"t": 0.1, "process": "workload", "type": "invoke", "f": "drain", "index": 0},
        {
            "t": 0.2,
            "process": "workload",
            "type": "ok",
            "f": "drain",
            "index": 0,
            "status": "DONE",
            "cpus_marked": cpus_marked,
            "cpus": [{"cpu": cpu, "ok": True, "pages": pages, "error": ""} for cpu, pages in parts],
        },
    ]


def with_drain(cpus_marked, parts) -> list[dict]:
    """clean()'s history with its drain 0 replaced by one that marked and reported these."""
    h = [e for e in clean() if not (e["f"] == "drain" and e.get("index") == 0)]
    return sorted([*h, *drain_entries(cpus_marked, parts)], key=lambda e: e["t"])


def test_a_part_reported_drained_needs_a_drain_that_ran_on_its_cpu_in_the_drains_span():
    """cpu0's part ran (its node's `drain` line at 0.15 s, 4 pages); cpu1's node logged no drain in the
    span (its line at 0.25 s is after the reply): a drainer that skipped cpu1 and said it drained it."""
    h = with_drain([0, 1], [(0, 4), (1, 0)])
    lines = [node(0.15, "drain", 0, A, how="lock", pages=4), node(0.25, "drain", 1, B, how="lock", pages=0)]
    v = check(h, BOUND, LEASE, [*clean_transfers(), *lines])
    assert v.valid is False
    assert v.findings == {
        "drains_reached_every_cpu": [
            "drain 0: cpu1 reported drained (0 pages), but no drain ran on cpu1 between 0.100s and 0.200s"
        ]
    }
    assert v.stats["drain_parts"] == {"reported": 2}
    lines[1]["t"] = 0.18
    assert check(h, BOUND, LEASE, [*clean_transfers(), *lines]).valid is True


def test_a_part_reporting_more_pages_than_its_cpus_drains_took_or_a_marked_cpu_without_a_part_is_invalid():
    h = with_drain([0, 1, 2], [(0, 5), (1, 0)])
    lines = [node(0.15, "drain", 0, A, how="work", pages=4), node(0.16, "drain", 1, B, how="work", pages=0)]
    v = check(h, BOUND, LEASE, [*clean_transfers(), *lines])
    assert v.findings["drains_reached_every_cpu"] == [
        "drain 0: cpu2 was marked, and its reply has no part for cpu2",
        "drain 0: cpu0 reported 5 pages drained, but the drains that ran on cpu0 between 0.100s and 0.200s took 4",
    ]
    # Without transfer logs a missing part is still seen; what ran on the nodes is not known.
    assert check(h, BOUND, LEASE).findings == {
        "drains_reached_every_cpu": ["drain 0: cpu2 was marked, and its reply has no part for cpu2"]
    }


def test_the_drains_an_alloc_contig_reports_are_held_to_the_same_evidence():
    """alloc_contig_range drains the zone once per attempt; the call's reply lists each drain. Its second
    attempt's drain reports cpu1 drained, and nothing ran on cpu1 in the call's span (0.5 s to 0.9 s)."""
    drains = [
        {"cpus_marked": [0], "cpus": [{"cpu": 0, "ok": True, "pages": 2, "error": ""}]},
        {"cpus_marked": [0, 1], "cpus": [{"cpu": c, "ok": True, "pages": 0, "error": ""} for c in (0, 1)]},
    ]
    contig = [
        {"t": 0.5, "process": "workload", "type": "invoke", "f": "alloc-contig", "nr_pages": 512},
        {"t": 0.9, "process": "workload", "type": "ok", "f": "alloc-contig", "nr_pages": 0, "drains": drains},
    ]
    h = sorted([*clean(), *contig], key=lambda e: e["t"])
    lines = [node(0.6, "drain", 0, A, how="lock", pages=2), node(0.7, "drain", 0, A, how="lock", pages=0)]
    v = check(h, BOUND, LEASE, [*clean_transfers(), *lines])
    assert v.findings == {
        "drains_reached_every_cpu": [
            "alloc-contig's drain 1: cpu1 reported drained (0 pages), but no drain ran on cpu1 "
            "between 0.500s and 0.900s"
        ]
    }
    assert v.stats["drain_parts"] == {"reported": 3}


def test_a_drain_line_of_a_process_not_yet_registered_is_no_sign_its_incarnation_ran_before_a_cpu_dead():
    """cpu0 restarted as incarnation C answers a drainer (its lists empty) at 0.95 s, before it registers and
    before the cpu_dead of its predecessor A (1.0 s): its allocations from 1.4 s are not after a cpu_dead
    it lived through (a sweep's seeds 80, 130, 150 and 197 under remote, when the replay counted the line)."""
    lines = [node(0.95, "drain", 0, "cccccccc33", how="lock", pages=0)]
    v = check(clean(), BOUND, LEASE, sorted([*clean_transfers(), *lines], key=lambda e: e["t"]))
    assert v.valid is True, v.findings


def test_a_history_written_before_cpus_marked_was_recorded_is_not_held_to_drain_lines():
    """Its nodes wrote no `drain` lines: its parts cannot be looked for, and are not findings."""
    h = with_drain([0, 1], [(0, 4), (1, 0)])
    del next(e for e in h if e["type"] == "ok" and e["f"] == "drain")["cpus_marked"]
    v = check(h, BOUND, LEASE, clean_transfers())
    assert v.valid is True, v.findings
    assert v.stats["drain_parts"] == {"reported": 0}


def run_by(strategy, isolated=None) -> list[dict]:
    """with_drain's history (cpu0 and cpu1 drained, 4 pages and none), run by `strategy` on a cluster whose
    isolated CPUs are `isolated` (None: the history does not say)."""
    h = with_drain([0, 1], [(0, 4), (1, 0)])
    meta = h[0]
    meta["strategy"] = strategy
    if isolated is not None:
        meta["scenario"] = {"cluster": {"isolated": isolated}}
    return h


def test_a_part_counts_only_the_drains_its_strategy_runs_by():
    """A remote drain whose parts ran as work items queued on the CPUs, each taking the pages reported: the
    CPUs were interrupted, the cost the remote pcp lock exists to avoid. The work items are no evidence
    that the drainer took the lock."""
    work = [node(0.15, "drain", 0, A, how="work", pages=4), node(0.16, "drain", 1, B, how="work", pages=0)]
    v = check(run_by("remote"), BOUND, LEASE, [*clean_transfers(), *work])
    assert v.findings == {
        "drains_reached_every_cpu": [
            f"drain 0: cpu{cpu} reported drained ({pages} pages), but the drains that ran on cpu{cpu} between "
            "0.100s and 0.200s were work items; remote drains by the remote pcp lock"
            for cpu, pages in ((0, 4), (1, 0))
        ]
    }
    assert check(run_by("workqueue"), BOUND, LEASE, [*clean_transfers(), *work]).valid is True
    # A lock drain of cpu0 by someone else in the span (a second coordinator's) counts for cpu0 alone.
    lock = [*work, node(0.17, "drain", 0, A, how="lock", pages=4)]
    v = check(run_by("remote"), BOUND, LEASE, [*clean_transfers(), *lock])
    assert [f.split(",")[0] for f in v.findings["drains_reached_every_cpu"]] == [
        "drain 0: cpu1 reported drained (0 pages)"
    ]
    swaps = [node(0.15, "drain", 0, A, how="swap", pages=4), node(0.16, "drain", 1, B, how="swap", pages=0)]
    assert check(run_by("rcu-swap"), BOUND, LEASE, [*clean_transfers(), *swaps]).valid is True
    assert (
        "rcu-swap drains by an rcu-swap"
        in check(run_by("rcu-swap"), BOUND, LEASE, [*clean_transfers(), *work]).findings["drains_reached_every_cpu"][0]
    )


def test_qpw_drains_by_the_lock_when_a_cpu_is_isolated_by_work_items_when_none_is_and_by_either_when_not_known():
    work = [node(0.15, "drain", 0, A, how="work", pages=4), node(0.16, "drain", 1, B, how="work", pages=0)]
    lock = [node(0.15, "drain", 0, A, how="lock", pages=4), node(0.16, "drain", 1, B, how="lock", pages=0)]
    for isolated, lines, valid in (([2, 3], lock, True), ([2, 3], work, False), ([], work, True), ([], lock, False)):
        v = check(run_by("qpw", isolated), BOUND, LEASE, [*clean_transfers(), *lines])
        assert v.valid is valid, (isolated, lines[0]["how"], v.findings)
    for lines in (lock, work):  # a history without the cluster's isolated CPUs: either way counts
        assert check(run_by("qpw"), BOUND, LEASE, [*clean_transfers(), *lines]).valid is True


def skipping_the_last_cpu(strategy):
    """A drain strategy that drains every marked CPU but the last, and reports that one drained too."""

    def drain(drainer, marked):
        parts = yield from strategy(drainer, marked[:-1])
        return [*parts, CpuDrain(marked[-1].cpu)] if marked else parts

    return drain


@pytest.mark.parametrize(
    ("name", "strategy", "drain"),
    [("remote", pb.STRATEGY_REMOTE, drain_remote), ("workqueue", pb.STRATEGY_WORKQUEUE, drain_workqueue)],
)
def test_a_drain_that_skips_a_cpu_and_reports_it_drained_is_caught_under_virtual_time(
    monkeypatch, name, strategy, drain
):
    """Planted in the drainer: the last marked CPU is neither asked nor sent work, and its part says DONE.
    No page moves, so every other property holds (before the `drain` lines, the run was valid)."""
    monkeypatch.setitem(drain_all.DRAIN_BY_STRATEGY, strategy, skipping_the_last_cpu(drain))
    sc = scenario.load(os.path.join(ROOT, "deploy", "chaos", "slow-cpu.toml"))
    v = virtual_runner.run(sc, name)
    assert v.valid is False
    assert list(v.findings) == ["drains_reached_every_cpu"], v.findings  # conservation and the rest: clean
    assert all("but no drain ran on cpu" in f for f in v.findings["drains_reached_every_cpu"])


@pytest.mark.parametrize(
    ("name", "strategy"),
    [("remote", pb.STRATEGY_REMOTE), ("rcu-swap", pb.STRATEGY_RCU_SWAP), ("qpw", pb.STRATEGY_QPW)],
)
def test_a_drainer_that_queues_work_where_its_strategy_takes_the_cpus_lists_is_caught_under_virtual_time(
    monkeypatch, name, strategy
):
    """Planted in the drainer: remote, rcu-swap and qpw (on a cluster with isolated CPUs) queue a
    drain_local_pages work item on each marked CPU instead, and each part reports the pages its work item
    took. Every page is accounted for; only the way the CPUs were drained is wrong."""
    monkeypatch.setitem(drain_all.DRAIN_BY_STRATEGY, strategy, drain_workqueue)
    sc = scenario.load(os.path.join(ROOT, "deploy", "chaos", "slow-cpu.toml"))
    assert sc.cluster.isolated  # qpw's key is on
    v = virtual_runner.run(sc, name)
    assert v.valid is False
    assert list(v.findings) == ["drains_reached_every_cpu"], v.findings
    assert all("were work items;" in f for f in v.findings["drains_reached_every_cpu"])
