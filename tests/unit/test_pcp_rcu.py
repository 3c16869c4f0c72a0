"""The RCU list-set pcp (node.mm.pcp_rcu), its grace periods (node.rcu) and the node's half of an
rcu-swap drain (node.rcu_drain), on an in-process zone."""

import asyncio
import threading

import pytest

from node.api.errors import FailedPrecondition
from node.mm import pcp_rcu
from node.mm import profile as profiles
from node.mm.audit import audit
from node.mm.constants import MIGRATE_MOVABLE, MIGRATE_UNMOVABLE
from node.mm.zone import Zone
from node.rcu import RcuCpu
from node.rcu_drain import RcuDrain
from tests.clock import FakeClock


def make(high=518, batch=63):
    zone = Zone(0, 1 << 16, 4)
    return zone, pcp_rcu.RcuPerCpuPages(1, high=high, batch=batch)


def fill(zone, pcp, n=5):
    """Allocate n order-0 pages through the fast path and free them again: the lists then hold a batch."""
    pfns = [pcp_rcu.rmqueue(zone, pcp, 0, MIGRATE_MOVABLE) for _ in range(n)]
    for pfn in pfns:
        assert pcp_rcu.free_unref_page(zone, pcp, pfn, 0, MIGRATE_MOVABLE) == "pcp"
    return pfns


def conserved(zone, pcp, held=()) -> bool:
    report = audit(zone, {"pcp": [(p, o) for p, o, _ in pcp.pages()], "held": list(held)})
    return report.ok and not pcp_rcu.check_pcp(pcp)


def test_fast_path_never_waits_for_a_drainer():
    """The fast path takes no lock a drainer holds: with the drainer lock held (a swap and its grace
    period in progress) allocations and frees still go through the pcp, with no trylock failure and no
    buddy fallback."""
    zone, pcp = make()
    with pcp.drain_lock:
        fill(zone, pcp)
        pfn = pcp_rcu.rmqueue(zone, pcp, 0, MIGRATE_UNMOVABLE)
        assert pcp_rcu.free_unref_page(zone, pcp, pfn, 0, MIGRATE_UNMOVABLE) == "pcp"
        pcp_rcu.free_unref_page_list(
            zone,
            pcp,
            [(p, 0, MIGRATE_MOVABLE) for p in [pcp_rcu.rmqueue(zone, pcp, 0, MIGRATE_MOVABLE) for _ in range(3)]],
        )
    s = pcp.stats
    assert (s.trylock_fail_alloc, s.trylock_fail_free, s.buddy_fallback_alloc, s.buddy_fallback_free) == (0, 0, 0, 0)
    assert pcp.count > 0 and conserved(zone, pcp)


def test_swap_moves_the_fast_path_to_the_empty_set_and_keeps_the_old_one_until_its_grace_period():
    """After a swap, frees and refills land on the new set and the old set is untouched; taking the old
    set before its grace period is refused; after it, the old set's pages come off exactly, and every
    page of the zone is still in one place."""
    zone, pcp = make()
    fill(zone, pcp)
    old = pcp.lp
    old_pages = sorted(old.pages())
    count0 = pcp.count
    pcp.swap()
    assert pcp.lp is not old and pcp.spare is old and pcp.gp_pending
    assert (pcp.lp.high, pcp.lp.batch) == (old.high, old.batch)
    pfn = pcp_rcu.rmqueue(zone, pcp, 0, MIGRATE_MOVABLE)  # refills the new set from the zone
    pcp_rcu.free_unref_page(zone, pcp, pfn, 0, MIGRATE_MOVABLE)
    assert sorted(old.pages()) == old_pages
    assert pcp.count == count0 + pcp.lp.count
    with pytest.raises(AssertionError):
        pcp.take_spare()
    with pytest.raises(AssertionError):
        pcp.swap()  # the spare is neither empty nor past its grace period
    pcp.grace_period_elapsed()
    taken = pcp.take_spare()
    assert sorted(taken) == old_pages and old.count == 0
    assert conserved(zone, pcp, [(p, o) for p, o, _ in taken])


def test_stranded_pages_stay_the_cpus_and_go_first_at_the_next_take():
    """Pages a drainer took and did not free come back stranded: counted in pcp.count and pages(), on
    no list the fast path uses, and handed over by the next take_spare."""
    zone, pcp = make()
    fill(zone, pcp)
    pcp.swap()
    pcp.grace_period_elapsed()
    taken = pcp.take_spare()
    in_use = pcp.lp.count
    pcp.strand(taken)
    assert pcp.count == in_use + sum(1 << o for _, o, _ in taken)
    assert conserved(zone, pcp)
    assert pcp.take_spare() == taken and pcp.count == in_use


def test_high_and_batch_apply_to_both_sets():
    _zone, pcp = make()
    pcp_rcu.pageset_update(pcp, 0, 0, 1)  # zone_pcp_disable's
    assert [(s.high, s.batch) for s in pcp.pcplists] == [(0, 1), (0, 1)]
    assert (pcp.high, pcp.batch) == (0, 1)


def test_under_an_auto_tuned_kernel_both_sets_tune_and_a_swap_keeps_the_tuning():
    """Under 6.12 each set is set up as that kernel's pcp (profile.set_up_pcp): auto-tuned, its 14
    lists. pageset_update gives both sets high_min and high_max; refills grow high on the set in use;
    a swap hands the new set high and the rest of the tuning, which the series keeps in per_cpu_pages;
    decay_pcp_high works on the set in use."""
    zone, pcp = make()
    profiles.set_up_pcp(pcp, profiles.get("6.12"), data_slice_pages=0)
    pcp_rcu.pageset_update(pcp, 321, 8192, 63)
    assert all(s.auto_high and len(s.lists) == 14 for s in pcp.pcplists)
    assert [(s.high_min, s.high_max) for s in pcp.pcplists] == [(321, 8192), (321, 8192)]
    for _ in range(20):  # refill after refill: nr_pcp_alloc grows high (pcp_high)
        pfns = [pcp_rcu.rmqueue(zone, pcp, 0, MIGRATE_MOVABLE) for _ in range(pcp.lp.count + 1)]
        assert None not in pfns
    grown = pcp.high
    assert grown > 321
    old = pcp.lp
    pcp.swap()
    new = pcp.lp
    assert new is not old and new.count == 0
    kept = ("high", "high_min", "high_max", "alloc_factor", "free_count", "flags", "batch", "free_factor")
    assert [getattr(new, f) for f in kept] == [getattr(old, f) for f in kept]
    pcp.grace_period_elapsed()
    zone.free_pcppages_bulk(pcp.take_spare())
    pcp_rcu.decay_pcp_high(zone, pcp)
    assert new.high == max(321, grown - (grown >> 3)) and old.high == grown  # the set in use only


def test_a_grace_period_ends_at_the_next_quiescent_state_or_at_once_in_an_extended_one():
    """A quiescent state passed before the wait does not end it; one after it does; a CPU in an extended
    quiescent state (idle, or user code on a NOHZ_FULL CPU) ends it at once."""
    rcu = RcuCpu()
    rcu.quiescent()
    started = threading.Event()

    def cpu():
        started.wait(5)
        rcu.quiescent()

    t = threading.Thread(target=cpu)
    t.start()

    def wait():
        started.set()
        return rcu.wait_for_qs(5.0)

    assert wait()
    t.join()
    with rcu.extended_qs():
        assert rcu.wait_for_qs(0.0)
    assert rcu.gp_timeouts == 0


def test_a_cpu_that_never_reports_fails_the_grace_period_within_its_bound():
    """A CPU stuck in the kernel (no quiescent state) makes wait_for_qs return False after its timeout,
    and the timeout is counted."""
    rcu = RcuCpu()
    assert rcu.wait_for_qs(0.05) is False
    assert rcu.gp_timeouts == 1 and rcu.gp_waits == 1


class Reporter:
    """A CPU thread that reports a quiescent state every millisecond while `on` is set."""

    def __init__(self, rcu):
        self.rcu, self.on, self.stop = rcu, threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.wait(0.001):
            if self.on.is_set():
                self.rcu.quiescent()

    def close(self):
        self.stop.set()
        self.thread.join()


def test_rcu_drain_after_a_timed_out_grace_period_keeps_the_pages_then_hands_them_over():
    """A swap whose CPU reports no quiescent state fails (gp_ok False, no pages, timeout counted); the old
    set stays the CPU's (pcp.count unchanged, spare pending). The next swap, once the CPU reports again,
    first waits out that grace period, hands over every page the CPU had, and commit makes them the
    drainer's; a retried commit succeeds without counting them twice, a late abort is refused."""
    zone, pcp = make()
    fill(zone, pcp)
    before = sorted(pcp.pages())
    rcu = RcuCpu()
    drain = RcuDrain(pcp, rcu, clock=FakeClock(0.0))
    reporter = Reporter(rcu)

    async def run():
        token, pages, _, ok = await drain.swap_and_take(lease_s=5.0, gp_timeout=0.05)
        assert (token, pages, ok) == (0, [], False)
        assert rcu.gp_timeouts == 1 and pcp.gp_pending and sorted(pcp.pages()) == before
        reporter.on.set()
        token, pages, _, ok = await drain.swap_and_take(lease_s=5.0, gp_timeout=5.0)
        assert ok and token and sorted(pages) == before
        assert drain.inflight() == pages and pcp.count == 0
        await drain.release(token, commit=True)
        drained = sum(1 << o for _, o, _ in before)
        assert drain.inflight() == [] and drain.drained_pages == drained
        await drain.release(token, commit=True)  # a retry whose reply was lost: ok, counted once
        assert drain.drained_pages == drained
        with pytest.raises(FailedPrecondition):
            await drain.release(token, commit=False)  # too late to keep them
        # The grant is recorded as a remote pcp lock's is (Snapshot.grants, the chaos checker).
        (record,) = drain.records()
        assert (record.token, record.outcome, record.lease_s) == (token, "committed", 5.0)

    try:
        asyncio.run(run())
    finally:
        reporter.close()


def test_rcu_drain_lease_expiry_keeps_the_pages_and_refuses_a_late_commit():
    """A grant not released within its lease returns its pages to the CPU (stranded), and the drainer's
    late commit is refused, so it cannot free pages the node still counts; an abort (commit False)
    strands them too; the next swap hands the stranded pages over first."""
    zone, pcp = make()
    fill(zone, pcp)
    before = sorted(pcp.pages())
    rcu = RcuCpu()
    drain = RcuDrain(pcp, rcu, clock=FakeClock(0.0))

    async def run():
        with rcu.extended_qs():  # an idle CPU: the grace period ends at once
            token, pages, _, ok = await drain.swap_and_take(lease_s=0.01, gp_timeout=1.0)
            assert ok and sorted(pages) == before
            await asyncio.sleep(0.05)
            assert drain.lease_expiries == 1 and sorted(pcp.pages()) == before
            with pytest.raises(FailedPrecondition):
                await drain.release(token, commit=True)
            assert drain.stale_commits_refused == 1
            token, pages, _, ok = await drain.swap_and_take(lease_s=5.0, gp_timeout=1.0)
            assert ok and sorted(pages) == before
            await drain.release(token, commit=False)
            assert sorted(pcp.pages()) == before and drain.drained_pages == 0
            expired, aborted = drain.records()
            assert (expired.outcome, expired.stale_commits_refused) == ("expired", 1)
            assert aborted.outcome == "aborted" and not drain.held

    asyncio.run(run())


def test_a_swap_cancelled_in_its_grace_period_leaves_every_page_the_cpus():
    """Sweep seed 4375 under the wall engine: a swap took the stranded pages of an expired grant, swapped
    the set in use and waited for its grace period; the coordinator stopped answering and the node's
    handler was cancelled there. The pages taken stay the CPU's (stranded), the swapped set stays its
    spare, the drainer lock is free, and the next swap hands every page over. Before the fix the
    stranded pages were gone from the CPU, neither its nor the zone's."""
    zone, pcp = make()
    fill(zone, pcp)
    rcu = RcuCpu()
    drain = RcuDrain(pcp, rcu, clock=FakeClock(0.0))

    async def run():
        with rcu.extended_qs():  # a grant whose lease runs out: its pages come back stranded
            token, pages, _, ok = await drain.swap_and_take(lease_s=0.01, gp_timeout=1.0)
            assert ok and pages
            deadline = asyncio.get_running_loop().time() + 5.0
            while not pcp.stranded and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.005)
        assert pcp.stranded and drain.lease_expiries == 1
        fill(zone, pcp)  # the set in use has pages again
        before = sorted(pcp.pages())
        swap = asyncio.ensure_future(drain.swap_and_take(lease_s=5.0, gp_timeout=0.5))
        deadline = asyncio.get_running_loop().time() + 5.0
        while not pcp.gp_pending and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.001)  # the swap has taken the stranded pages and waits for its grace period
        assert pcp.gp_pending and not pcp.stranded and drain.inflight()
        swap.cancel()
        with pytest.raises(asyncio.CancelledError):
            await swap
        assert sorted(pcp.pages()) == before and conserved(zone, pcp)
        assert drain.inflight() == [] and not drain.held
        with rcu.extended_qs():
            token, pages, _, ok = await drain.swap_and_take(lease_s=5.0, gp_timeout=1.0)
        assert ok and sorted(pages) == before
        await drain.release(token, commit=True)
        assert pcp.count == 0

    asyncio.run(run())
