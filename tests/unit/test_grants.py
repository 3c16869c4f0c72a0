"""The node halves of the remote drains as rules (node.grants, node.remote_lock_rule, node.rcu_drain_rule,
node.rcu_gp), driven by hand: no loop, no thread, no timer; what they wait for is what they yield."""

import pytest

from node.api.errors import FailedPrecondition
from node.mm.constants import MIGRATE_MOVABLE
from node.mm.lock import spin_is_locked, spin_lock, spin_trylock, spin_unlock
from node.mm.pcp import PerCpuPages
from node.mm.pcp_rcu import RcuPerCpuPages
from node.rcu_drain_rule import RcuSwapGrants
from node.rcu_gp import QuiescentStates
from node.remote_lock_rule import PcpLockGrants
from tests.clock import FakeClock

PAGES = [(pfn, 0, MIGRATE_MOVABLE) for pfn in range(100, 108)]


class Manual:
    """The driver hooks of node.grants as records: the lease is armed by appending the grant."""

    def _arm(self, grant) -> None:
        self.armed.append(grant)


class ManualLock(Manual, PcpLockGrants):
    armed: list


class ManualSwap(Manual, RcuSwapGrants):
    armed: list


def lock_rule() -> tuple[ManualLock, PerCpuPages, FakeClock]:
    clock = FakeClock(10.0)
    pcp = PerCpuPages(3, high=64, batch=8)
    pcp.restore(PAGES)
    rule = ManualLock(pcp, clock)
    rule.armed = []
    return rule, pcp, clock


def finish(steps, *answers):
    """Send `answers` to a rule's generator in turn; (the bounds it yielded, what it returned)."""
    bounds = [next(steps)]
    try:
        for answer in answers:
            bounds.append(steps.send(answer))
    except StopIteration as done:
        return bounds, done.value
    raise AssertionError(f"the rule asked for more waits than {answers}: {bounds}")


def test_the_lock_rule_asks_for_one_bounded_wait_then_grants_and_arms_the_lease():
    rule, pcp, clock = lock_rule()
    steps = rule.take(lease_s=0.5, wait_timeout=0.25)
    assert next(steps) == 0.25 and rule.held is None  # nothing decided before the lock is held
    spin_lock(pcp.lock)  # what the driver's wait did
    clock.now = 10.125
    with pytest.raises(StopIteration) as done:
        steps.send(True)
    token, pages, wait, left = done.value.value
    assert (token, sorted(pages), wait, left) == (1, PAGES, 0.125, 0)
    (grant,) = rule.armed
    assert rule.held is grant and (grant.granted_at, grant.lease_s) == (10.125, 0.5) and pcp.count == 0


def test_the_lock_rule_refuses_a_wait_that_ran_out_and_grants_nothing():
    rule, pcp, _ = lock_rule()
    with pytest.raises(FailedPrecondition, match=r"pcp lock of cpu 3 not acquired within 0\.25s"):
        finish(rule.take(lease_s=0.5, wait_timeout=0.25), False)
    assert rule.held is None and rule.armed == [] and pcp.count == len(PAGES) and rule.grants == 0


def test_an_empty_pcp_is_not_locked_at_all():
    rule, pcp, _ = lock_rule()
    pcp.take_bulk(pcp.count, 0)
    with pytest.raises(StopIteration) as done:
        next(rule.take(0.5, 0.25))
    assert done.value.value == (0, [], 0.0, 0) and not spin_is_locked(pcp.lock)


def test_an_expiry_after_a_commit_is_a_no_op_so_a_driver_need_not_cancel_it():
    rule, pcp, clock = lock_rule()
    spin_lock(pcp.lock)
    steps = rule.take(0.5, 0.25)
    next(steps)
    with pytest.raises(StopIteration):
        steps.send(True)
    (grant,) = rule.armed
    rule.settle(1, commit=True)
    clock.now = 11.0
    rule.expire(grant)
    assert (grant.outcome, rule.lease_expiries, rule.drained_pages, pcp.count) == ("committed", 0, len(PAGES), 0)
    assert not spin_is_locked(pcp.lock)


def test_the_swap_rule_waits_for_a_grace_period_and_keeps_the_set_when_it_does_not_end():
    """A grace period that does not end in time (False) leaves the old set the CPU's, pending; the next
    swap first waits for that grace period, then takes everything."""
    clock = FakeClock(0.0)
    pcp = RcuPerCpuPages(0, high=64, batch=8)
    pcp.lp.restore(PAGES)
    rule = ManualSwap(pcp, clock)
    rule.armed = []
    bounds, result = finish(rule.swap(lease_s=1.0, gp_timeout=0.5), False)
    assert (bounds, result) == ([0.5], (0, [], 0.0, False)) and pcp.gp_pending and pcp.count == len(PAGES)
    assert not pcp.drain_lock.locked()
    bounds, (token, pages, _, ok) = finish(rule.swap(lease_s=1.0, gp_timeout=0.5), True)
    assert bounds == [0.5] and (token, sorted(pages), ok) == (1, PAGES, True) and rule.armed[0].pages == pages


def test_a_grace_period_is_over_at_the_next_quiescent_state_or_at_once_in_an_extended_one():
    rcu = QuiescentStates()
    rcu.quiescent()
    start = rcu.gp_start()
    assert not rcu.gp_elapsed(start)
    rcu.quiescent()
    assert rcu.gp_elapsed(start)
    with rcu.extended_qs():
        assert rcu.gp_elapsed(rcu.gp_start())
    assert not rcu.gp_elapsed(rcu.gp_start())
    assert rcu.gp_end(False) is False and (rcu.gp_waits, rcu.gp_timeouts) == (3, 1)


# ------------------------------------------------------------------ the chunked remote drain (v6.10+)
CHUNK = 63 << 5  # batch << CONFIG_PCP_BATCH_SCALE_MAX: 2016 pages


def full_pcp(drain: str, n: int = 5000) -> tuple[ManualLock, PerCpuPages]:
    """A CPU holding `n` order-0 pages at batch 63, its lock rule in drain_pages_zone form `drain`."""
    pcp = PerCpuPages(3, high=8192, batch=63)
    pcp.restore([(pfn, 0, MIGRATE_MOVABLE) for pfn in range(1000, 1000 + n)])
    rule = ManualLock(pcp, FakeClock(10.0), drain=drain)
    rule.armed = []
    return rule, pcp


def turn(rule: ManualLock, left: int):
    """One turn of the drainer's loop (coordinator.drain.remote): lock_drain (the lock is free, so the
    driver's wait takes it at once), then the commit of what it granted, which drops the lock."""
    steps = rule.take(0.5, 0.25, left)
    try:
        next(steps)
        spin_lock(rule.pcp.lock)
        steps.send(True)
    except StopIteration as done:
        taken = done.value
    if taken.token:
        rule.settle(taken.token, commit=True)
    return taken


def drain_loop(rule: ManualLock, between=lambda: None) -> list:
    """drain_pages_zone's loop over grants until `left` is 0; between() runs on the CPU between chunks."""
    answers = [turn(rule, 0)]
    while answers[-1].left:
        between()
        answers.append(turn(rule, answers[-1].left))
    return answers


def test_under_6_12_a_remote_drain_takes_one_chunk_per_grant_and_the_cpus_trylock_wins_between_them():
    """5,000 pages at batch 63: three grants of at most 2,016 pages, each with its own token and lease,
    the count read under the lock each time; between two, the lock is free and the CPU's own trylock
    (its fast path) takes it. The metric counts one drain."""
    rule, pcp = full_pcp("count-locked")
    trylocks: list[bool] = []

    def cpu_fast_path() -> None:
        trylocks.append(spin_trylock(pcp.lock))
        spin_unlock(pcp.lock)

    answers = drain_loop(rule, cpu_fast_path)
    assert [len(a.pages) for a in answers] == [CHUNK, CHUNK, 5000 - 2 * CHUNK]
    assert [a.left for a in answers] == [5000 - CHUNK, 5000 - 2 * CHUNK, 0]
    assert [a.token for a in answers] == [1, 2, 3] and len(rule.armed) == 3
    assert trylocks == [True, True]
    assert (pcp.count, rule.drained_pages, rule.grants, rule.drains) == (0, 5000, 3, 1)
    assert [g.outcome for g in rule.records()] == ["committed"] * 3


@pytest.mark.parametrize(
    ("drain", "left_behind"), [("chunked", 100), ("count-locked", 0)], ids=["6.12-count-race", "6.12"]
)
def test_a_refill_between_chunks_is_left_behind_by_the_count_read_once_and_drained_by_the_count_read_locked(
    drain, left_behind
):
    """55f77df7d715 (v6.10) reads pcp->count once, before the loop: 100 pages the CPU refills after the
    first chunk stay on its lists when the loop ends. 66eca1021a42 (v6.11) reads it under the lock at
    each chunk and drains them too."""
    rule, pcp = full_pcp(drain)
    refills = [[(pfn, 0, MIGRATE_MOVABLE) for pfn in range(9000, 9100)]]

    def refill() -> None:
        if refills:
            pcp.restore(refills.pop())

    answers = drain_loop(rule, refill)
    assert all(len(a.pages) <= CHUNK for a in answers) and len(answers) == 3
    assert (pcp.count, rule.drained_pages) == (left_behind, 5100 - left_behind)


def test_under_6_1_one_grant_takes_every_page():
    rule, pcp = full_pcp("one-hold")
    (answer,) = drain_loop(rule)
    assert (len(answer.pages), answer.left, pcp.count, rule.grants, rule.drains) == (5000, 0, 0, 1, 1)


def test_the_count_read_once_may_find_its_pages_gone_and_the_loop_goes_on_without_a_grant():
    """v6.10: the drainer's count says 2,984 pages are left, but the CPU allocated all but 10 meanwhile;
    the next chunk grants those 10 and the one after it nothing (token 0), lowering the count to 0."""
    rule, pcp = full_pcp("chunked")
    first = turn(rule, 0)
    pcp.take_bulk(pcp.count - 10, 0)  # the CPU's allocations
    second, third = turn(rule, first.left), turn(rule, 5000 - 2 * CHUNK)
    assert (len(second.pages), second.left) == (10, 5000 - 2 * CHUNK)
    assert (third.token, third.pages, third.left) == (0, [], 0) and not spin_is_locked(pcp.lock)


def test_an_unknown_drain_form_is_refused():
    with pytest.raises(ValueError, match="unknown drain_pages_zone form 'lazy'"):
        ManualLock(PerCpuPages(0, high=64, batch=8), FakeClock(0.0), drain="lazy")
