"""One CPU's pcp lists under seeded random traffic, for every kernel profile a cluster can run: its
allocations and frees (single, and batched where the profile's free_unref_page_list may meet a
drainer), its own drains and high decay, and a remote drainer's grants (node.remote_lock_rule:
take under the pcp lock, then commit, abort, expire, or a stale commit refused). After every step
each page of the zone is in exactly one place (free in the buddy, on the lists, held by the CPU's
tasks, or in the grant), the lists agree with their count, and while a grant holds the lock the
CPU's own traffic leaves the lists as they are: its trylocks fail and it falls back to the buddy.
The same for rcu-swap's two list sets (node.rcu_drain_rule): while a grace period is awaited the
CPU's traffic goes to the new set and leaves the old one as it was."""

import random

import pytest

from node.api.errors import FailedPrecondition
from node.mm import pcp as pcpmod
from node.mm import pcp_rcu
from node.mm import profile as profiles
from node.mm.audit import audit, check_pcp
from node.mm.constants import MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE
from node.mm.lock import spin_is_locked, spin_trylock
from node.mm.zone import Zone
from node.rcu_drain_rule import RcuSwapGrants
from node.remote_lock_rule import PcpLockGrants
from node.shared.timebase import CostModel
from tests.clock import FakeClock

PAGES = 16384
ORDERS = (0, 0, 0, 0, 1, 2, 3, 9)
TYPES = (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE)
STEPS = 1200


class Grants(PcpLockGrants):
    """The remote lock rule with its lease in the test's hands: `expire` is called by a step."""

    def _arm(self, grant) -> None:
        pass


class SwapGrants(RcuSwapGrants):
    def _arm(self, grant) -> None:
        pass


class Cpu:
    def __init__(self, kernel: str, seed: int) -> None:
        self.rng = random.Random(seed)
        self.profile = profiles.get(kernel)
        self.ops = profiles.pcp_ops(self.profile)
        self.zone = Zone(0, PAGES, 2)
        batch = self.zone.zone_batchsize()
        high = self.zone.zone_highsize(batch, 2)
        self.pcp = pcpmod.PerCpuPages(0, high=high, batch=batch)
        # As a node sets up its pcp: the profile's lists, auto-tuning and batching flags, all of them.
        profiles.set_up_pcp(self.pcp, self.profile, CostModel().data_slice_pages())
        pcpmod.pageset_update(self.pcp, high, high * 4 if self.profile.pcp_high_auto else high, batch)
        self.clock = FakeClock(0.0)
        self.grants = Grants(self.pcp, self.clock, drain=self.profile.drain)
        self.allocated: dict[int, tuple[int, int]] = {}  # pfn -> (order, migratetype)
        self.grant = None  # (token, pages) while a drainer holds the lock
        self.ended: list[int] = []  # tokens of grants that ended other than by commit
        self.fallbacks = 0

    def step(self) -> None:
        held = self.grant is not None
        ops = ["alloc", "alloc", "alloc", "free", "free", "pageset"]
        if self.profile.remote_drain:  # v6.0+: another CPU may take this pcp's lock
            ops.append("grant_or_end")
        if not held or self.profile.free_list_trylock:  # else free_unref_page_list would spin on it
            ops.append("free_list")
        if not held:  # both take the lock and wait for it
            ops += ["drain", "decay"]
        op = self.rng.choice(ops)
        lists = self.pcp.pages()
        fails = self.pcp.stats.trylock_fail_alloc + self.pcp.stats.trylock_fail_free
        getattr(self, op)()
        if held and op != "grant_or_end":  # the drainer's hold: the CPU's own traffic went to the buddy
            assert self.pcp.pages() == lists, op
            self.fallbacks += self.pcp.stats.trylock_fail_alloc + self.pcp.stats.trylock_fail_free - fails
        holders = {
            "allocated": [(pfn, o) for pfn, (o, _) in self.allocated.items()],
            "pcp": self.pcp.pages(),
            "grant": self.grant[1] if self.grant else [],
        }
        report = audit(self.zone, holders)
        assert report.ok, (op, report.to_dict())
        assert check_pcp(self.pcp) == [], op

    def alloc(self) -> None:
        order, mt = self.rng.choice(ORDERS), self.rng.choice(TYPES)
        pfn = self.ops.rmqueue(self.zone, self.pcp, order, mt)
        if pfn is not None:
            self.allocated[pfn] = (order, mt)

    def _pick(self, only_order0: bool = False) -> list[int]:
        pfns = [pfn for pfn, (o, _) in self.allocated.items() if not only_order0 or o == 0]
        return self.rng.sample(pfns, min(len(pfns), self.rng.randrange(1, 40)))

    def free(self) -> None:
        for pfn in self._pick()[:1]:
            order, _ = self.allocated.pop(pfn)
            # node.alloc frees with the pageblock's type at free time
            self.ops.free_unref_page(self.zone, self.pcp, pfn, order, self.zone.get_pageblock_migratetype(pfn))

    def free_list(self) -> None:
        pfns = self._pick(only_order0=True)
        pages = [(pfn, 0, self.zone.get_pageblock_migratetype(pfn)) for pfn in pfns]
        for pfn in pfns:
            del self.allocated[pfn]
        self.ops.free_unref_page_list(self.zone, self.pcp, pages, [])

    def drain(self) -> None:
        self.ops.drain_pages_zone(self.zone, self.pcp)

    def pageset(self) -> None:
        """zone_pcp_update (CPU hotplug, a sysctl): new high and batch, stored without the pcp lock as
        the kernel's WRITE_ONCE does, as the CPUs online change (1 to 8 of them)."""
        batch = self.zone.zone_batchsize()
        high = self.zone.zone_highsize(batch, self.rng.randrange(1, 9))
        pcpmod.pageset_update(self.pcp, high, high * 4 if self.profile.pcp_high_auto else high, batch)

    def decay(self) -> None:
        if self.profile.pcp_high_auto:
            pcpmod.decay_pcp_high(self.zone, self.pcp)

    def grant_or_end(self) -> None:
        self.clock.now += 0.001
        if self.grant is None:
            self._take()
            return
        token, pages = self.grant
        end = self.rng.choice(("commit", "commit", "abort", "expire"))
        if end == "commit":  # the pages leave the CPU, and only then go to the zone
            self.grants.settle(token, True)
            self.zone.free_pcppages_bulk(pages)
            self.grants.settle(token, True)  # a retried commit (its reply lost) is answered again
        elif end == "abort":
            self.grants.settle(token, False)
        else:
            assert self.grants.held is not None
            self.grants.expire(self.grants.held)
        self.grant = None
        if end != "commit":
            self.ended.append(token)
            # The stale drainer's late commit is refused: its pages are back on the lists.
            with pytest.raises(FailedPrecondition, match=f"token {token} no longer holds"):
                self.grants.settle(token, True)

    def _take(self) -> None:
        steps = self.grants.take(lease_s=0.01, wait_timeout=1.0)
        try:
            next(steps)  # the bounded wait for the lock: free here, so it is taken at once
            assert spin_trylock(self.pcp.lock)
            steps.send(True)
        except StopIteration as done:  # the answer (at once, when the lists were empty)
            taken = done.value
        if taken.token:
            self.grant = (taken.token, taken.pages)
        else:  # nothing to take: the lock is free again
            assert not spin_is_locked(self.pcp.lock)


@pytest.mark.parametrize("kernel", profiles.LIVE)
def test_the_pcp_lists_under_random_traffic_and_remote_grants_keep_every_page_once(kernel):
    totals = {"fallbacks": 0, "grants": 0, "ended": 0}
    for seed in range(3):
        cpu = Cpu(kernel, seed)
        for _ in range(STEPS):
            cpu.step()
        totals["fallbacks"] += cpu.fallbacks
        totals["grants"] += cpu.grants.grants
        totals["ended"] += len(cpu.ended)
    # Every kind of step happened: grants that held the lock while the CPU fell back to the buddy,
    # and grants that ended without a commit (none on 5.19: its local_lock is no other CPU's to take).
    if profiles.get(kernel).remote_drain:
        assert totals["grants"] > 50 and totals["fallbacks"] > 50 and totals["ended"] > 10, totals
    else:
        assert totals == {"fallbacks": 0, "grants": 0, "ended": 0}


class SwapCpu:
    """The rcu-swap design (node.mm.pcp_rcu): the CPU's traffic on the set in use, a drainer's swap
    stopped at each grace period it waits for (which the step then ends in time or not), and the
    grant of the old set committed, aborted (stranded) or expired."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.zone = Zone(0, PAGES, 2)
        batch = self.zone.zone_batchsize()
        self.pcp = pcp_rcu.RcuPerCpuPages(0, high=self.zone.zone_highsize(batch, 2), batch=batch)
        self.clock = FakeClock(0.0)
        self.grants = SwapGrants(self.pcp, self.clock)
        self.allocated: dict[int, tuple[int, int]] = {}
        self.swap = None  # the drainer's swap generator, stopped at a grace period
        self.grant = None  # (token, pages)
        self.counts = {"gp_waits": 0, "gp_timeouts": 0, "commits": 0, "stranded": 0}

    def step(self) -> None:
        rng, pcp = self.rng, self.pcp
        op = rng.choice(("alloc", "alloc", "alloc", "free", "free", "free_list", "drain", "drainer"))
        old = pcp.spare.pages() if pcp.gp_pending else None
        getattr(self, op)()
        if old is not None and pcp.gp_pending and op != "drainer":
            assert pcp.spare.pages() == old, op  # the old set is the drainer's until its grace period
        holders = {
            "allocated": [(pfn, o) for pfn, (o, _) in self.allocated.items()],
            "pcp": pcp.pages(),
            "drainer": self.grants.inflight(),
        }
        report = audit(self.zone, holders)
        assert report.ok, (op, report.to_dict())
        assert pcp_rcu.check_pcp(pcp) == [], op

    def alloc(self) -> None:
        order, mt = self.rng.choice(ORDERS), self.rng.choice(TYPES)
        pfn = pcp_rcu.rmqueue(self.zone, self.pcp, order, mt)
        if pfn is not None:
            self.allocated[pfn] = (order, mt)

    def free(self) -> None:
        if self.allocated:
            pfn = self.rng.choice(list(self.allocated))
            order, _ = self.allocated.pop(pfn)
            pcp_rcu.free_unref_page(self.zone, self.pcp, pfn, order, self.zone.get_pageblock_migratetype(pfn))

    def free_list(self) -> None:
        pfns = [pfn for pfn, (o, _) in self.allocated.items() if o == 0]
        pfns = self.rng.sample(pfns, min(len(pfns), self.rng.randrange(1, 40)))
        for pfn in pfns:
            del self.allocated[pfn]
        pages = [(pfn, 0, self.zone.get_pageblock_migratetype(pfn)) for pfn in pfns]
        pcp_rcu.free_unref_page_list(self.zone, self.pcp, pages, [])

    def drain(self) -> None:
        pcp_rcu.drain_pages_zone(self.zone, self.pcp)  # the CPU's own drain: the set in use

    def drainer(self) -> None:
        self.clock.now += 0.001
        rng = self.rng
        if self.swap is not None:  # a grace period ends, in time or not
            ok = rng.random() < 0.8
            self.counts["gp_timeouts"] += not ok
            self._advance(ok)
        elif self.grant is not None:
            token, pages = self.grant
            end = rng.choice(("commit", "commit", "abort", "expire"))
            if end == "commit":
                self.grants.settle(token, True)
                self.zone.free_pcppages_bulk(pages)
                self.counts["commits"] += 1
            elif end == "abort":
                self.grants.settle(token, False)
            else:
                self.grants.expire(self.grants.held)
            if end != "commit":
                self.counts["stranded"] += 1
                with pytest.raises(FailedPrecondition, match=f"token {token} holds no rcu-swap grant"):
                    self.grants.settle(token, True)
            self.grant = None
        else:
            self.swap = self.grants.swap(lease_s=0.01, gp_timeout=0.005)
            self._advance(None)

    def _advance(self, ok: bool | None) -> None:
        try:
            if ok is None:
                next(self.swap)
            else:
                self.swap.send(ok)
            self.counts["gp_waits"] += 1
        except StopIteration as done:
            self.swap = None
            token, pages, _, _ = done.value
            if token:
                self.grant = (token, pages)


def test_rcu_swap_list_sets_under_random_traffic_and_swaps_keep_every_page_once():
    counts = {"gp_waits": 0, "gp_timeouts": 0, "commits": 0, "stranded": 0}
    for seed in range(3):
        cpu = SwapCpu(seed)
        for _ in range(STEPS):
            cpu.step()
        counts = {k: counts[k] + cpu.counts[k] for k in counts}
    assert all(v > 10 for v in counts.values()), counts
