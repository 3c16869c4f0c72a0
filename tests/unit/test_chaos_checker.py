"""The checker on hand-written histories: a clean one is valid, and each kind of violation, or
missing final observations, changes the verdict (it can fail)."""

import copy

from coordinator.tools.chaos.checker import Verdict, check, drain_bound
from coordinator.tools.chaos.scenario import Fault
from coordinator.tools.chaos.transfers import load
from coordinator.tools.cli.chaos import summary_row
from node.shared.transfer_log import TransferLog

BOUND, LEASE = 10.0, 0.5


def clean() -> list[dict]:
    return [
        {"t": 0.0, "process": "runner", "type": "meta", "f": "scenario", "bound_s": BOUND, "lease_s": LEASE},
        {"t": 0.1, "process": "workload", "type": "invoke", "f": "drain", "index": 0},
        {"t": 0.2, "process": "workload", "type": "ok", "f": "drain", "index": 0, "status": "DONE"},
        {"t": 0.3, "process": "workload", "type": "invoke", "f": "drain", "index": 1},
        {"t": 0.4, "process": "workload", "type": "fail", "f": "drain", "index": 1, "status": "FAILED"},
        {"t": 1.0, "process": "nemesis", "type": "fault", "f": "kill-coordinator", "phase": "start"},
        {"t": 1.1, "process": "workload", "type": "invoke", "f": "drain", "index": 2},
        {"t": 1.1, "process": "workload", "type": "info", "f": "drain", "index": 2, "error": "UNAVAILABLE: x"},
        {"t": 3.0, "process": "nemesis", "type": "fault", "f": "kill-coordinator", "phase": "heal"},
        {"t": 5.0, "process": "final", "type": "final", "f": "settled", "ok": True, "detail": "4 CPUs live"},
        {
            "t": 6.0,
            "process": "final",
            "type": "final",
            "f": "tasks",
            "cpus": {"2": {"runs_at_heal": 10, "runs_after": 50}},
        },
        {
            "t": 7.0,
            "process": "final",
            "type": "final",
            "f": "audit",
            "ok": True,
            "total_pages": 100,
            "lost": 0,
            "duplicated": 0,
            "unexpected": 0,
            "lost_pfns": [],
            "duplicated_pfns": [],
            "errors": [],
            "where": {},
        },
        {
            "t": 7.1,
            "process": "final",
            "type": "final",
            "f": "grants",
            "unreachable": [],
            "cpus": {
                "0": [
                    {
                        "token": 1,
                        "outcome": "committed",
                        "held_s": 0.01,
                        "granted_t": 0.15,
                        "lease_s": LEASE,
                        "pages": 3,
                        "committed_after_expiry": False,
                        "stale_commits_refused": 0,
                    },
                    {
                        "token": 2,
                        "outcome": "expired",
                        "held_s": 0.52,
                        "granted_t": 0.35,
                        "lease_s": LEASE,
                        "pages": 3,
                        "committed_after_expiry": False,
                        "stale_commits_refused": 1,
                    },
                ]
            },
        },
    ]


def final(h, f):
    return next(e for e in h if e["type"] == "final" and e["f"] == f)


def test_a_clean_history_is_valid_and_counted():
    v = check(clean(), BOUND, LEASE)
    assert v.valid is True and v.exit_code == 0 and not v.findings
    assert v.stats["drains"] == {"invoked": 3, "ok": 1, "fail": 1, "info": 1}
    assert v.stats["stale_commits"] == {"refused": 1, "applied": 0}


def test_lost_and_duplicated_pages_are_invalid_with_examples():
    h = clean()
    final(h, "audit").update(ok=False, lost=2, lost_pfns=[7, 9], duplicated=1, duplicated_pfns=[3])
    v = check(h, BOUND, LEASE)
    assert v.valid is False and v.exit_code == 1
    assert v.findings["conservation"] == ["2 pages lost, first pfns [7, 9]", "1 pages duplicated, first pfns [3]"]


def test_audit_errors_and_an_audit_that_did_not_complete_are_invalid():
    h = clean()
    final(h, "audit")["errors"] = ["cpu1: count 3 but lists hold 2"]
    assert check(h, BOUND, LEASE).findings["conservation"] == ["audit: cpu1: count 3 but lists hold 2"]
    h = clean()
    audit = final(h, "audit")
    for k in list(audit):
        if k not in ("t", "process", "type", "f"):
            del audit[k]
    audit["error"] = "DEADLINE_EXCEEDED: slow"
    assert check(h, BOUND, LEASE).valid is False


def test_a_stale_commit_applied_is_invalid():
    h = clean()
    final(h, "grants")["cpus"]["0"][1]["committed_after_expiry"] = True
    v = check(h, BOUND, LEASE)
    assert v.findings["stale_writes_applied"] == ["cpu0: token 2's commit was applied after its lease expired"]


def test_a_grant_still_held_at_the_final_read_is_judged_by_how_long_it_had_been_held_then():
    """Sweep seed 4176 under the wall engine: a direct reclaim's drain granted cpu2's lock 30 ms before its
    node was read. Held that long is within the lease; held past the lease and the timer's slack is not."""
    for read_after, findings in (
        (0.03, []),
        (LEASE + 2.0, ["cpu0: token 1 held the pcp lock 2.500s (lease 0.5s) still held at the final read"]),
    ):
        h = clean()
        final(h, "grants")["cpus"]["0"][0].update(outcome="held", held_s=None, read_t=0.15 + read_after)
        assert check(h, BOUND, LEASE).findings.get("lock_lease", []) == findings


def test_a_lock_held_past_its_lease_or_still_held_past_it_is_invalid():
    """Seen held at a stop's heal within the lease (a stop shorter than the lease) is no violation."""
    h = clean()
    final(h, "grants")["cpus"]["0"][1]["held_s"] = LEASE + 2.0
    assert "held the pcp lock 2.500s" in check(h, BOUND, LEASE).findings["lock_lease"][0]
    h = clean()
    final(h, "grants")["cpus"]["0"][0].update(outcome="held", held_s=None)
    assert check(h, BOUND, LEASE).findings["lock_lease"] == ["cpu0: token 1 still holds the pcp lock after healing"]
    for after, valid in ((LEASE + 1.6, False), (LEASE / 2, True)):  # past the lease and the poll's slack, or not
        h = clean()
        h.insert(
            9,
            {"t": 4.0, "process": "nemesis", "type": "observe", "f": "pcp-lock-still-held", "cpu": 1, "after_s": after},
        )
        assert check(h, BOUND, LEASE).valid is valid, after


def test_the_time_a_node_was_stopped_does_not_count_against_its_grant_lease():
    """A grant held 5 s across a 4.6 s SIGSTOP of its node kept the lease; the same hold with the
    node stopped for only 1 s of it did not."""

    def stopped_for(seconds: float) -> list[dict]:
        h = clean()
        final(h, "grants")["cpus"]["0"][1].update(held_s=5.0, granted_t=0.35)
        h[5:5] = [
            {"t": 0.4, "process": "nemesis", "type": "fault", "f": "stop-node", "phase": "start", "cpu": 0},
            {"t": 0.4 + seconds, "process": "nemesis", "type": "fault", "f": "stop-node", "phase": "heal", "cpu": 0},
        ]
        return h

    assert check(stopped_for(4.6), BOUND, LEASE).valid is True
    assert "held the pcp lock 5.000s" in check(stopped_for(1.0), BOUND, LEASE).findings["lock_lease"][0]


def test_the_time_a_node_was_stopped_does_not_count_against_a_lock_seen_while_the_coordinator_was_stopped():
    """Sweep seed 2552: the coordinator stops itself holding cpu1's lock and cpu1 is SIGSTOPped 0.2 s
    later for 1.81 s; its lease timer fires once it runs again, and the poll sees the lock free 2.02 s
    after the coordinator's stop. 1.81 s of that the node could not end the lease; with it stopped for
    only 0.2 s of them the lock outlived the lease."""

    def stopped_for(seconds: float) -> list[dict]:
        h = clean()
        h[5:5] = [
            {"t": 0.3, "process": "nemesis", "type": "observe", "f": "coordinator-stopped", "pid": 0},
            {"t": 0.5, "process": "nemesis", "type": "fault", "f": "stop-node", "phase": "start", "cpu": 1},
            {"t": 0.5 + seconds, "process": "nemesis", "type": "fault", "f": "stop-node", "phase": "heal", "cpu": 1},
            {"t": 2.32, "process": "nemesis", "type": "observe", "f": "pcp-lock-free", "cpu": 1, "after_s": 2.02},
        ]
        return h

    assert check(stopped_for(1.81), BOUND, LEASE).valid is True
    (finding,) = check(stopped_for(0.2), BOUND, LEASE).findings["lock_lease"]
    assert finding == (
        "cpu1: pcp lock free only 2.020s after the coordinator stopped holding it "
        "(lease 0.5s, 0.200s of them with cpu1 stopped)"
    )


def test_a_lock_seen_free_late_by_a_late_read_is_judged_by_when_a_read_last_saw_it_held():
    """Seed 4021 under the wall engine: the nemesis's first round of reads waited 2 s on a partitioned
    node, so it saw cpu3's lock free (or still held) 2.02 s after the coordinator's stop, lease 0.5 s here;
    the read that last saw it held was sent at the stop. A read that saw it held past the lease is one."""

    def seen(f: str, held_seen_s: float) -> list[dict]:
        h = clean()
        h[5:5] = [
            {"t": 0.3, "process": "nemesis", "type": "observe", "f": "coordinator-stopped", "pid": 0},
            {"t": 2.32, "process": "nemesis", "type": "observe", "f": f, "cpu": 3, "after_s": 2.02}
            | {"held_seen_s": held_seen_s},
        ]
        return h

    for f in ("pcp-lock-free", "pcp-lock-still-held"):
        assert check(seen(f, 0.0), BOUND, LEASE).valid is True
        assert check(seen(f, 1.9), BOUND, LEASE).findings["lock_lease"] == [
            "cpu3: pcp lock seen held 1.900s after the coordinator stopped holding it (lease 0.5s)"
        ]


def test_a_drain_that_never_completed_or_took_too_long_is_invalid():
    h = clean()
    h.insert(9, {"t": 3.5, "process": "workload", "type": "invoke", "f": "drain", "index": 3})
    assert check(h, BOUND, LEASE).findings["drains_in_bound"] == ["drain 3: invoked at 3.50s and never completed"]
    h = clean()
    h[2] = {**h[2], "t": 0.1 + BOUND + 3.0}  # the 2 s the coordinator was dead extend its bound to 12 s
    assert "drain 0: ok after 13.00s, bound 12.00s" in check(h, BOUND, LEASE).findings["drains_in_bound"][0]


def test_time_the_coordinator_was_stopped_extends_a_drains_bound():
    """A drain invoked before the coordinator stopped may take the stop's length on top."""
    h = clean()
    h.insert(5, {"t": 0.9, "process": "workload", "type": "invoke", "f": "drain", "index": 9})
    h.insert(9, {"t": 0.9 + BOUND + 1.5, "process": "workload", "type": "ok", "f": "drain", "index": 9})
    assert check(h, BOUND, LEASE).valid is True  # 2 s of the drain were spent with the coordinator dead


def test_no_task_run_after_healing_or_no_settling_is_invalid():
    h = clean()
    final(h, "tasks")["cpus"]["2"]["runs_after"] = 10
    assert "reported no run after healing" in check(h, BOUND, LEASE).findings["liveness"][0]
    h = clean()
    final(h, "settled").update(ok=False, detail="live CPUs [0, 1] of 4")
    v = check(h, BOUND, LEASE)
    assert v.valid is False
    assert v.findings["liveness"] == ["the cluster did not settle after healing: live CPUs [0, 1] of 4"]
    # The wall runner's wait grew by the time the host's run queue held a process back: the finding says so.
    final(h, "settled").update(waited_s=41.25, held_back_s=11.2)
    assert check(h, BOUND, LEASE).findings["liveness"] == [
        "the cluster did not settle after healing: live CPUs [0, 1] of 4"
        " (waited 41.2 s, in which the host's run queue held a process back 11.2 s)"
    ]


def test_missing_final_observations_make_the_verdict_unknown():
    h = [e for e in clean() if not (e["type"] == "final" and e["f"] in ("audit", "grants"))]
    v = check(h, BOUND, LEASE)
    assert v.valid == "unknown" and v.exit_code == 2
    assert v.findings["missing"] == ["no final audit in the history", "no final grants in the history"]


def test_drain_bounds_grow_with_the_cpus_and_the_timeouts():
    assert drain_bound("remote", 8, 0.5, 1.5, 2.0) > drain_bound("remote", 4, 0.5, 1.5, 2.0)
    assert drain_bound("workqueue", 4, 0.5, 1.5, 4.0) > drain_bound("workqueue", 4, 0.5, 1.5, 2.0)
    assert copy.deepcopy(clean()) == clean()  # the fixture is not shared state


def test_grant_records_that_could_not_be_read_make_the_verdict_unknown():
    h = clean()
    final(h, "grants")["unreachable"] = ["1"]
    v = check(h, BOUND, LEASE)
    assert v.valid == "unknown" and v.findings["missing"] == ["cpu1: grant records could not be read"]


# ------------------------------------------------------------------ every CPU's progress after healing
def test_a_housekeeping_cpu_that_allocates_nothing_after_healing_is_invalid():
    h = clean()
    final(h, "tasks")["cpus"]["0"] = {"role": "ROLE_HOUSEKEEPING", "allocs_at_heal": 500, "allocs_after": 900}
    assert check(h, BOUND, LEASE).valid is True
    final(h, "tasks")["cpus"]["0"]["allocs_after"] = 500
    assert check(h, BOUND, LEASE).findings["liveness"] == [
        "cpu0 (ROLE_HOUSEKEEPING): no allocation after healing (allocations 500 -> 500)"
    ]


def test_a_cpu_whose_allocations_the_zone_refused_for_want_of_memory_is_alive_and_said_to_be():
    """It ran and the zone answered it: short of memory, not stuck. Refusals from before the heal, or a
    fenced CPU's (the runners count only the zone's refusals), do not count."""
    h = clean()
    cpu0 = {"role": "ROLE_HOUSEKEEPING", "allocs_at_heal": 500, "allocs_after": 500}
    final(h, "tasks")["cpus"]["0"] = cpu0 | {"refused_at_heal": 40, "refused_after": 43}
    v = check(h, BOUND, LEASE)
    assert v.valid is True and v.stats["liveness"] == {"refused_only": [0]}
    final(h, "tasks")["cpus"]["0"] = cpu0 | {"refused_at_heal": 43, "refused_after": 43}
    v = check(h, BOUND, LEASE)
    assert v.findings["liveness"] == ["cpu0 (ROLE_HOUSEKEEPING): no allocation after healing (allocations 500 -> 500)"]
    assert "liveness" not in v.stats


def test_a_latency_task_with_no_run_after_healing_is_a_finding_whatever_its_cpus_allocations():
    h = clean()
    tasks = final(h, "tasks")["cpus"]["2"]
    tasks |= {"allocs_at_heal": 30, "allocs_after": 30, "refused_at_heal": 0, "refused_after": 5}
    runs = tasks["runs_after"] = tasks["runs_at_heal"]
    v = check(h, BOUND, LEASE)
    assert v.findings["liveness"] == [f"cpu2: the latency task reported no run after healing (runs {runs} -> {runs})"]
    assert v.stats["liveness"] == {"refused_only": [2]}


# ------------------------------------------------------------------ the transfer logs replayed
A, B = "aaaaaaaa11", "bbbbbbbb22"  # incarnations


def node(t, ev, cpu, inc, **kw) -> dict:
    return {"t": t, "ev": ev, "cpu": cpu, "inc": inc, **kw}


def zone(t, ev, owner=None, **kw) -> dict:
    return {"t": t, "ev": ev, **({} if owner is None else {"owner": owner}), **kw}


def clean_transfers() -> list[dict]:
    """cpu0 refills 8 pages and gives 4 back; cpu1 gets those 4 (and allocates one); a remote drain
    takes cpu1's; cpu0 is declared dead and its next incarnation gets its pages; a CMA range comes and
    goes; the coordinator restarts and cpu1's claim gives it back what it held."""
    return [
        zone(0.0, "start"),
        zone(0.0, "take", -1, pages=[[1024, 10]]),
        node(0.1, "refill", 0, A, pages=[[0, 2], [4, 2]]),
        node(0.15, "alloc", 0, A, pfn=0, order=0),
        node(0.2, "free", 0, A, pages=[[4, 2]]),
        node(0.3, "refill", 1, B, pages=[[4, 2]]),
        node(0.31, "alloc", 1, B, pfn=4, order=0),
        node(0.4, "commit", 1, B, pages=[[5, 0], [6, 0], [7, 0]]),
        node(0.5, "refill", 1, B, pages=[[6, 0]]),
        node(0.6, "alloc", 0, A, pfn=1, order=0),
        zone(1.0, "cpu_dead", 0),
        node(1.2, "discard", 0, A),
        node(1.3, "refill", 0, "cccccccc33", pages=[[0, 2]]),
        node(1.4, "alloc", 0, "cccccccc33", pfn=0, order=0),
        zone(1.5, "take", -2, pages=[[8, 3]]),
        zone(1.6, "release", -2, pages=[[8, 3]]),
        node(1.7, "refill", 1, B, pages=[[8, 3]]),
        zone(2.0, "start"),
        zone(2.0, "take", -1, pages=[[1024, 10]]),
        node(2.2, "free", 1, B, pages=[[4, 0]]),  # sent as the coordinator died: refused by the new one
        node(2.4, "keep", 1, B, pages=[[4, 0]]),
        zone(2.5, "claim", 1, pages=[[4, 0], [6, 0], [8, 3]]),  # cpu1 resumes with what it holds
        node(2.6, "alloc", 1, B, pfn=9, order=0),
        node(2.7, "refill", 0, "cccccccc33", pages=[[0, 2]]),  # the rebuilt zone owes cpu0's old pages nothing
    ]


def test_clean_transfer_logs_are_valid_and_counted():
    v = check(clean(), BOUND, LEASE, clean_transfers())
    assert v.valid is True, v.findings
    assert v.stats["transfers"] == {
        "events": 24,
        "cpu_dead": 1,
        "coordinator_starts": 2,
        "allocs": 5,
        "superseded": 0,
    }


def test_a_page_given_to_a_cpu_while_another_holds_it_is_invalid_with_times():
    """The old zone's evicted idempotency key: cpu0's free was applied and its pages handed to cpu1,
    then cpu0's retry was refused as new and cpu0 kept the pages (a refused free changes nothing)."""
    t = clean_transfers()
    t.insert(6, node(0.35, "keep", 0, A, pages=[[4, 2]]))
    v = check(clean(), BOUND, LEASE, t)
    assert v.valid is False
    assert v.findings["pages_held_twice"] == [
        "pfn 4: cpu0 got it at 0.350s while cpu1 held it (since 0.300s)",
        "pfn 5: cpu0 got it at 0.350s while cpu1 held it (since 0.300s)",
        "pfn 6: cpu0 got it at 0.350s while cpu1 held it (since 0.300s)",
        "pfn 7: cpu0 got it at 0.350s while cpu1 held it (since 0.300s)",
        "pfn 6: cpu1 got it at 0.500s while cpu0 held it (since 0.350s)",
    ]


def test_a_free_whose_answer_came_after_the_cpu_was_declared_dead_holds_nothing():
    """A free sent, applied, its pages handed on; the retry is refused because the CPU was declared
    dead meanwhile: the node keeps them only until it hears, and holds nothing the zone owes it."""
    t = clean_transfers()
    t.insert(11, node(1.1, "keep", 0, A, pages=[[4, 2]]))  # after cpu_dead at 1.0, cpu1 holding pfn 4
    assert check(clean(), BOUND, LEASE, t).valid is True


def test_a_range_taken_while_a_cpu_holds_its_pages_or_a_page_given_twice_to_one_cpu_is_invalid():
    t = clean_transfers()
    t.insert(14, node(1.45, "refill", 0, "cccccccc33", pages=[[9, 0]]))  # in the CMA range [8, 16)
    assert check(clean(), BOUND, LEASE, t).findings["pages_held_twice"] == [
        "pfn 9: cma got it at 1.500s while cpu0 held it (since 1.450s)"
    ]
    t = clean_transfers()
    t.insert(3, node(0.12, "refill", 0, A, pages=[[3, 0]]))
    assert check(clean(), BOUND, LEASE, t).findings["pages_held_twice"] == [
        "pfn 3: cpu0 got it at 0.120s while holding it (since 0.100s)"
    ]


def test_a_killed_process_holds_nothing_though_no_coordinator_took_its_pages_back():
    """Seed 105 of the 1,000-seed sweep: cpu1's refill, applied by the first coordinator, reached it
    just after a second coordinator started (whose zone owes it nothing until a claim); cpu1 was
    killed before it registered with the second, so no cpu_dead ever took those pages back, and the
    second's zone gave them to cpu0. The kill in the history ends cpu1's holdings; without it the
    same logs are a page held twice."""
    t = [
        zone(0.0, "start"),
        zone(1.0, "start"),
        node(1.01, "refill", 1, B, pages=[[4, 0]]),
        node(2.1, "refill", 0, A, pages=[[4, 0]]),
        node(2.2, "refill", 1, "cccccccc33", pages=[[4, 0]]),
    ]
    killed = {"t": 2.0, "process": "nemesis", "type": "fault", "f": "kill-node", "phase": "start", "cpu": 1}
    h = clean()
    assert check(h, BOUND, LEASE, t).findings["pages_held_twice"] == [
        "pfn 4: cpu0 got it at 2.100s while cpu1 held it (since 1.010s)",
        "pfn 4: cpu1 got it at 2.200s while cpu0 held it (since 2.100s)",
    ]
    h.insert(6, killed)
    assert check(h, BOUND, LEASE, t).findings["pages_held_twice"] == [
        "pfn 4: cpu1 got it at 2.200s while cpu0 held it (since 2.100s)"  # the new process's refill: a finding
    ]
    h[6] = {**killed, "error": "ProcessLookupError: no such process"}  # a kill that failed ends nothing
    assert len(check(h, BOUND, LEASE, t).findings["pages_held_twice"]) == 2


def test_an_allocation_after_the_coordinator_took_the_cpus_pages_back_is_invalid():
    """Issue 14 point 1: a live CPU declared dead keeps allocating from its lists until it hears."""
    t = clean_transfers()
    t.insert(11, node(1.05, "alloc", 0, A, pfn=2, order=0))
    t.insert(12, node(1.1, "alloc", 0, A, pfn=3, order=0))
    v = check(clean(), BOUND, LEASE, t)
    assert v.valid is False and "pages_held_twice" not in v.findings
    assert v.findings["allocated_after_cpu_dead"] == [
        "cpu0 (incarnation aaaaaaaa): the coordinator took its pages back (cpu_dead) at 1.000s, then its first "
        "alloc of pfn 2 at 1.050s; 2 such in all, its last allocation at 1.100s"
    ]


def test_a_replaced_coordinators_cpu_dead_in_its_own_zone_is_no_finding():
    """second-coordinator: the first, resumed beside the second, declares dead the CPUs that moved on
    to the second, in its own zone; they allocate on under the second's leases. A cpu_dead of the
    newest zone still counts."""
    t = [
        zone(0.0, "start", epoch=1),
        node(0.1, "refill", 0, A, pages=[[0, 2]]),
        zone(0.5, "start", epoch=2),
        zone(0.6, "claim", 0, pages=[[0, 2]], epoch=2),
        zone(1.0, "cpu_dead", 0, epoch=1),
        node(1.1, "alloc", 0, A, pfn=1, order=0),
        node(1.2, "refill", 1, B, pages=[[0, 2]]),  # the first's zone is nobody's: still held by cpu0
    ]
    v = check(clean(), BOUND, LEASE, t)
    assert "allocated_after_cpu_dead" not in v.findings
    assert v.findings["pages_held_twice"] == [
        "pfn 0: cpu1 got it at 1.200s while cpu0 held it (since 0.600s)",
        "pfn 1: cpu1 got it at 1.200s while cpu0 held it (since 0.600s)",
        "pfn 2: cpu1 got it at 1.200s while cpu0 held it (since 0.600s)",
        "pfn 3: cpu1 got it at 1.200s while cpu0 held it (since 0.600s)",
    ]
    assert v.stats["transfers"]["superseded"] == 1
    t[4] = zone(1.0, "cpu_dead", 0, epoch=2)
    assert check(clean(), BOUND, LEASE, t[:6]).findings["allocated_after_cpu_dead"]


def test_a_cpu_a_dead_coordinator_declared_dead_runs_on_once_a_newer_zone_takes_its_claim():
    """Seed 779 of the 1,000-seed sweep: cpu0, SIGSTOPped, was declared dead by coordinator 1, which
    was then replaced; cpu0, resumed, registered with coordinator 3 resuming its incarnation, which
    took its claim, and allocated on under its lease. Allocating before that claim is a finding."""
    t = [
        zone(0.0, "start", epoch=1),
        node(0.1, "refill", 0, A, pages=[[0, 2]]),
        zone(1.0, "cpu_dead", 0, epoch=1),
        zone(2.0, "start", epoch=3),
        zone(2.1, "claim", 0, pages=[[0, 2]], epoch=3),
        node(2.2, "alloc", 0, A, pfn=1, order=0),
    ]
    assert check(clean(), BOUND, LEASE, t).valid is True
    early = [*t[:4], node(2.05, "alloc", 0, A, pfn=1, order=0), *t[4:]]
    assert check(clean(), BOUND, LEASE, early).findings["allocated_after_cpu_dead"] == [
        "cpu0 (incarnation aaaaaaaa): the coordinator took its pages back (cpu_dead) at 1.000s, then its first "
        "alloc of pfn 1 at 2.050s; 1 such in all, its last allocation at 2.050s"
    ]
    same = [*t[:4], zone(2.1, "claim", 0, pages=[[0, 2]], epoch=1), t[5]]  # no newer zone took it
    assert "allocated_after_cpu_dead" in check(clean(), BOUND, LEASE, same).findings


def test_a_claim_the_zone_refused_is_invalid_naming_who_held_the_block_it_stopped_at():
    """Sweep seed 4365 under the wall engine: a CPU stopped across two restarts claimed first the pages a
    rebuilt zone had handed on, and the claims of the CPUs holding them were refused. No page was used
    twice, so the run was valid; a refusal now is a finding. A replaced zone's refusal is not."""
    t = [
        zone(0.0, "start", epoch=2),
        node(0.1, "refill", 0, A, pages=[[0, 2]]),
        zone(1.0, "start", epoch=3),
        zone(1.1, "claim", 1, pages=[[2, 0], [3, 0]], epoch=3),
        zone(1.2, "claim-refused", 0, pages=[[0, 2]], at=[0, 2], epoch=3),
        zone(1.3, "claim-refused", 2, pages=[[64, 0]], at=[64, 0], epoch=3),
        zone(1.4, "claim-refused", 3, pages=[[128, 0]], at=[128, 0], epoch=2),  # superseded
    ]
    v = check(clean(), BOUND, LEASE, t)
    assert v.findings == {
        "claims_in_conflict": [
            "cpu0's claim of 4 base pages was refused at 1.200s: the zone could not give it pfn 0 (order 2), "
            "cpu1's since 1.100s",
            "cpu2's claim of 1 base pages was refused at 1.300s: the zone could not give it pfn 64 (order 0), "
            "held by no owner the logs name",
        ]
    }
    assert check(clean(), BOUND, LEASE, [*t[:4], t[6]]).valid is True


def test_a_run_that_kept_transfer_logs_but_has_none_is_unknown():
    h = clean()
    h[0]["transfer_logs"] = True
    v = check(h, BOUND, LEASE)
    assert v.valid == "unknown" and v.findings["missing"] == ["the run kept transfer logs, but none were read"]
    assert check(h, BOUND, LEASE, clean_transfers()).valid is True


def test_transfer_logs_are_read_on_the_historys_clock_and_a_torn_last_line_is_skipped(tmp_path):
    log = TransferLog(str(tmp_path / "transfers-cpu0.jsonl"), clock=lambda: 1000.5, cpu=0, inc=A)
    log.write("refill", pages=[[0, 0]])
    log.write("free", t=1000.25, pages=[[0, 0]])
    log.close()
    with open(tmp_path / "transfers-coordinator.jsonl", "w") as f:
        f.write('{"t":1000.0,"ev":"start"}\n{"t":1000.9,"ev":"cpu_de')  # SIGKILLed mid-line
    h = clean()
    h.insert(1, {"t": 0.0, "process": "runner", "type": "meta", "f": "clock", "monotonic_t0": 1000.0})
    events = load(str(tmp_path), h)
    assert [(e["t"], e["ev"]) for e in events] == [(0.0, "start"), (0.25, "free"), (0.5, "refill")]
    assert load(str(tmp_path), clean()) is None  # no clock: nothing to convert with


def test_the_summary_row_of_a_run_whose_final_audit_failed_shows_unknown_figures():
    """An audit that timed out leaves lost/duplicated None in the stats; the table says "?"
    (it used to raise TypeError formatting None, and the whole summary was lost)."""
    v = Verdict(
        "unknown", stats={"drains": {"ok": 3}, "audit": {"lost": None, "duplicated": None}, "stale_commits": {}}
    )
    row = summary_row("slow-cpu", "qpw", v)
    assert row.split() == ["slow-cpu", "qpw", "unknown", "3/0/0", "?", "?", "?"]


def test_a_drain_whose_own_call_an_rpc_fault_could_lose_is_not_late_but_counted():
    """Seed 199 of the 1,000-seed sweep: a coordinator-side rule for any peer dropped the workload's
    DrainAllPages reply; the drain itself had ended at once. The same late answer with no such rule
    in force is a finding."""
    rule = {"kind": "rpc", "at_s": 0.05, "heal_after_s": 0.1, "side": "coordinator", "drop_reply": 0.25}
    what = Fault(**rule).describe()
    h = clean()
    h[0]["scenario"] = {"faults": [rule]}
    h[1:1] = [
        {"t": 0.05, "process": "nemesis", "type": "fault", "f": "rpc", "phase": "start", "what": what},
        {"t": 0.15, "process": "nemesis", "type": "fault", "f": "rpc", "phase": "heal", "what": what},
    ]
    late = {"t": 0.1, "process": "workload", "type": "invoke", "f": "drain", "index": 9}
    h += [late, {**late, "t": 12.0, "type": "info", "error": "DEADLINE_EXCEEDED: x"}]
    v = check(h, BOUND, LEASE)
    assert "drains_in_bound" not in v.findings and v.stats["drains"]["call_lost_by_fault"] == 1
    h[-2]["t"] = 0.5  # invoked after the rule was healed
    assert check(h, BOUND, LEASE).findings["drains_in_bound"] == [
        "drain 9: info after 11.50s, bound 12.00s (DEADLINE_EXCEEDED: x)"  # a coordinator stop in between
    ]


def test_a_refill_an_older_zone_answered_after_a_newer_one_started_joins_nobody():
    """Seed 516 of the 1,000-seed sweep: the first coordinator's zone applied cpu2's refill just
    before the second's zone started, and the answer reached cpu2 after; the rebuilt zone owes those
    pages to nobody until cpu2's claim, and gave them to cpu0. A refill of the newest zone still joins."""
    t = [
        zone(0.0, "start", epoch=1),
        zone(1.0, "start", epoch=2),
        node(1.01, "refill", 1, B, pages=[[4, 0]], epoch=1),
        node(2.0, "refill", 0, A, pages=[[4, 0]], epoch=2),
    ]
    v = check(clean(), BOUND, LEASE, t)
    assert "pages_held_twice" not in v.findings and v.stats["transfers"]["superseded"] == 1
    t[2] = node(1.01, "refill", 1, B, pages=[[4, 0]], epoch=2)
    assert check(clean(), BOUND, LEASE, t).findings["pages_held_twice"] == [
        "pfn 4: cpu0 got it at 2.000s while cpu1 held it (since 1.010s)"
    ]


def test_a_free_kept_after_a_newer_zone_started_joins_nobody_until_a_claim():
    """Seed 4020 under the wall engine: cpu2 sent a free just as a partition cut it off; a second
    coordinator's zone started meanwhile and, unclaimed, gave the pages to cpu1; once the partition
    healed the free was refused and cpu2 kept them, then discarded them when its claim was refused.
    A free kept with no zone started since still joins."""
    t = [
        zone(0.0, "start", epoch=1),
        node(0.5, "refill", 2, B, pages=[[8, 1]], epoch=1),
        node(1.0, "free", 2, B, pages=[[8, 1]]),
        zone(2.0, "start", epoch=2),
        node(3.0, "refill", 1, A, pages=[[8, 1]], epoch=2),
        node(4.0, "keep", 2, B, pages=[[8, 1]]),
        node(4.1, "discard", 2, B),
    ]
    v = check(clean(), BOUND, LEASE, t)
    assert "pages_held_twice" not in v.findings and v.stats["transfers"]["superseded"] == 1
    t[3] = zone(0.9, "start", epoch=2)  # the zone started before the free was sent: the keep is cpu2's
    assert check(clean(), BOUND, LEASE, t).findings["pages_held_twice"] == [
        "pfn 8: cpu2 got it at 4.000s while cpu1 held it (since 3.000s)",
        "pfn 9: cpu2 got it at 4.000s while cpu1 held it (since 3.000s)",
    ]
