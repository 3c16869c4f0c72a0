"""The bug replays of node.mm.bugs, each failing with its bug and passing with its fix, and the kernel
steps behind them: the UP spinlock (038a102535eb) and Hahn's batched free-path flush (v5 3/3).
docs/kernel-facts.md, sections 6 and 7."""

import pytest

from node.mm import bugs, pcp_free
from node.mm import pcp as pcpmod
from node.mm import profile as profiles
from node.mm.constants import MIGRATE_MOVABLE
from node.mm.lock import LockBusy, UnsharedPcpLock, spin_is_locked, spin_lock, spin_trylock, spin_unlock
from node.mm.zone import Zone


def test_the_up_profiles_differ_only_in_the_switches():
    base, up, fixed = (profiles.get(n) for n in ("6.2", "6.2-up", "6.2-up-fixed"))
    assert (base.smp, up.smp, fixed.smp) == (True, False, False)
    assert (up.up_spin_lock_irqsave, fixed.up_spin_lock_irqsave) == (False, True)
    assert profiles.get("6.2-batched-free").free_high_batched and not base.free_high_batched
    assert list(profiles.PROFILES)[:3] == ["5.19", "6.1", "6.2"]


def test_up_spinlock_trylock_never_fails_and_counts_nesting():
    """spinlock_up.h: no lock word, trylock succeeds even while held; the debug state counts it."""
    lock = profiles.UpSpinlock()
    assert spin_trylock(lock) and spin_trylock(lock) and lock.nested == 1 and spin_is_locked(lock)
    spin_unlock(lock)
    spin_unlock(lock)
    assert not spin_is_locked(lock)
    with pytest.raises(RuntimeError, match="unlocked"):
        spin_unlock(lock)


@pytest.mark.parametrize(
    "name,runs_in_drain",
    [("5.19", False), ("6.1", False), ("6.2", True), ("6.2-up", True), ("6.2-up-fixed", False)],
)
def test_an_irq_in_a_spin_lock_section(name, runs_in_drain):
    """drain_pages_zone's spin_lock section: IRQs off under 5.19/6.1 (irqsave) and on UP after
    038a102535eb (pcp_spin_lock_maybe_irqsave); on under 6.2 and UP before it."""
    pcp = pcpmod.PerCpuPages(0, lock=bugs._pcp_lock(profiles.get(name)))
    irq = profiles.LocalIrq(profiles.get(name), pcp)
    ran = []
    irq.spin_lock_section(lambda: irq.raise_irq(lambda: ran.append(irq.in_section)))
    assert ran == [runs_in_drain]


@pytest.mark.parametrize("name", ["6.2-up", "6.2-up-fixed"])
def test_up_trylock_sections_keep_irqs_out(name):
    """v6.2's pcp_trylock_prepare() is local_irq_save() on !SMP: the fast path's section defers the IRQ
    with or without the fix."""
    pcp = pcpmod.PerCpuPages(0, lock=profiles.UpSpinlock())
    irq = profiles.LocalIrq(profiles.get(name), pcp)
    ran = []
    irq.pcp_section(lambda: irq.raise_irq(lambda: ran.append(irq.in_section)))
    assert ran == [False]


def test_up_trylock_replay_fails_with_the_bug():
    """6.2-up: the IRQ's trylock succeeds inside the drain and takes a page the drainer had counted."""
    r = bugs.up_trylock(profiles.get("6.2-up"))
    assert r.facts["nested_acquisitions"] == 1 and r.facts["irq_in_drain"] == 1
    assert (r.facts["count_read"], r.facts["freed"]) == (62, 61)
    assert len(r.findings) == 2 and "trylock failure on UP" in r.findings[0]


@pytest.mark.parametrize("name,fallbacks", [("6.2-up-fixed", 0), ("6.2", 1), ("6.1", 0)])
def test_up_trylock_replay_passes_with_the_fix_and_on_smp(name, fallbacks):
    """The fix defers the IRQ past the unlock; on SMP (6.2) the trylock fails and the IRQ goes to the
    buddy; 6.1 keeps IRQs off. The drain frees all it counted."""
    r = bugs.up_trylock(profiles.get(name))
    assert r.findings == []
    assert r.facts["freed"] == r.facts["count_read"] == 62
    assert r.facts["trylock_fail_alloc"] == fallbacks


def test_bulk_free_replay_counts_the_longest_zone_lock_hold():
    """2,016 pages (63 << CONFIG_PCP_BATCH_SCALE_MAX): one hold of all of them before the series, 32
    holds of at most pcp->batch (63) with it."""
    before = bugs.bulk_free(profiles.get("6.2"))
    after = bugs.bulk_free(profiles.get("6.2-batched-free"))
    assert (before.facts["zone_lock_holds"], before.facts["longest_hold_pages"]) == (1, 2016)
    assert (after.facts["zone_lock_holds"], after.facts["longest_hold_pages"]) == (32, 63)
    assert before.findings and "2016 pages" in before.findings[0] and after.findings == []
    assert before.facts["left_on_pcp"] == after.facts["left_on_pcp"] == 0
    assert bugs.bulk_free(profiles.get("6.2-batched-free"), nr_pages=100, batch=40).facts["longest_hold_pages"] == 40


def test_bulk_free_replay_refuses_bad_sizes():
    with pytest.raises(ValueError, match="must be >= 1"):
        bugs.bulk_free(profiles.get("6.2"), nr_pages=0)


class LockTakenAfterFirstRelease(UnsharedPcpLock):
    """pcp->lock that a remote drainer grabs the moment the flush drops it."""

    def __init__(self):
        super().__init__()
        self.armed = False
        self.released = 0

    def get_nowait(self):
        if self.released:
            raise LockBusy
        return super().get_nowait()

    def put(self, item, /):
        self.released += self.armed
        super().put(item)


def test_batched_flush_gives_up_when_the_relock_fails():
    """Hahn v5 3/3: after a chunk the pcp lock is dropped and retaken with a trylock; on failure the
    flush returns False (pcp unlocked) and the rest stays on the pcp, above high."""
    zone = Zone(0, 1 << 14, 1)
    lock = LockTakenAfterFirstRelease()
    pcp = pcpmod.PerCpuPages(0, high=1000, batch=10, lock=lock)
    pcp.free_high_batched = True
    for pfn in zone.rmqueue_bulk(0, 50, MIGRATE_MOVABLE):
        pcp_free.free_unref_page(zone, pcp, pfn, 0, MIGRATE_MOVABLE)
    assert pcp.count == 50
    spin_lock(lock)
    lock.armed = True  # the drainer comes from here on
    held = pcp_free.free_high_flush(zone, pcp, 50, MIGRATE_MOVABLE)
    assert held is False and not spin_is_locked(lock)
    assert pcp.count == 40 and pcp.stats.freed_high_pages == 10
