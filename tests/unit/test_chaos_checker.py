"""The checker on hand-written histories: a clean one is valid, and each kind of violation, or
missing final observations, changes the verdict (it can fail)."""

import copy

from coordinator.tools.chaos.checker import check, drain_bound

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


def test_a_lock_held_past_its_lease_or_still_held_is_invalid():
    h = clean()
    final(h, "grants")["cpus"]["0"][1]["held_s"] = LEASE + 2.0
    assert "held the pcp lock 2.500s" in check(h, BOUND, LEASE).findings["lock_lease"][0]
    h = clean()
    final(h, "grants")["cpus"]["0"][0].update(outcome="held", held_s=None)
    assert check(h, BOUND, LEASE).findings["lock_lease"] == ["cpu0: token 1 still holds the pcp lock after healing"]
    h = clean()
    h.insert(
        9, {"t": 4.0, "process": "nemesis", "type": "observe", "f": "pcp-lock-still-held", "cpu": 1, "after_s": 1.5}
    )
    assert check(h, BOUND, LEASE).valid is False


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
    assert check(h, BOUND, LEASE).valid is False


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
