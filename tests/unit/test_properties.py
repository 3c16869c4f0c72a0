"""Random operation sequences on a small zone with two pcps keep every invariant (docs/design.md, "Invariants").

Claims: whatever mix of rmqueue (all cached and uncached orders, all pcp types), free_unref_page (including
HIGHATOMIC and ISOLATE frees and frees under a held pcp lock), free_unref_page_list, drain_pages_zone,
reclaim_active toggles and high/batch changes runs, (1) every page is in exactly one place (audit), (2) each
pcp's count matches its lists (check_pcp), (3) a free never leaves the pcp above its effective high unless it
was already there, and a free_high flush empties the pcp, (4) a drain empties the pcp.
"""

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from node.mm.audit import audit, check_pcp
from node.mm.constants import (
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    PAGE_ALLOC_COSTLY_ORDER,
    pcp_allowed_order,
)
from node.mm.lock import spin_is_locked, spin_lock, spin_unlock
from node.mm.pcp import PerCpuPages, drain_pages_zone, nr_pcp_high, rmqueue
from node.mm.pcp_free import free_unref_page, free_unref_page_list
from node.mm.zone import Zone

PCP_TYPES = (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE)
ORDERS = (0, 0, 0, 1, 2, 3, 4, 9, 10)
HIGH_BATCH = ((0, 1), (6, 2), (20, 4), (64, 16), (200, 31), (518, 63), (10, 63))


class PcpMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.zone = Zone(0, 8192, 2)
        self.pcps = [PerCpuPages(cpu, high=64, batch=16) for cpu in range(2)]
        self.allocated = [dict(), dict()]  # per cpu: pfn -> (order, migratetype)

    @rule(cpu=st.integers(0, 1), order=st.sampled_from(ORDERS), mt=st.sampled_from(PCP_TYPES), contended=st.booleans())
    def alloc(self, cpu, order, mt, contended):
        pcp = self.pcps[cpu]
        if contended:
            spin_lock(pcp.lock)
        try:
            pfn = rmqueue(self.zone, pcp, order, mt)
        finally:
            if contended:
                spin_unlock(pcp.lock)
        if pfn is not None:
            assert pfn not in self.allocated[cpu], f"pfn {pfn} handed out twice"
            self.allocated[cpu][pfn] = (order, mt)

    def _effective_high(self, pcp):
        return nr_pcp_high(pcp, self.zone, False)

    @precondition(lambda self: any(self.allocated))
    @rule(
        data=st.data(),
        mt_override=st.sampled_from((None, None, None, MIGRATE_HIGHATOMIC, MIGRATE_ISOLATE)),
        contended=st.booleans(),
    )
    def free(self, data, mt_override, contended):
        cpu = 0 if self.allocated[0] and (not self.allocated[1] or data.draw(st.booleans())) else 1
        pcp = self.pcps[cpu]
        pfn = data.draw(st.sampled_from(sorted(self.allocated[cpu])))
        order, mt = self.allocated[cpu].pop(pfn)
        mt = mt if mt_override is None else mt_override
        before = pcp.count
        free_high = bool(pcp.free_factor and 0 < order <= PAGE_ALLOC_COSTLY_ORDER)
        high = self._effective_high(pcp)
        flushed0 = pcp.stats.freed_high_pages
        if contended:
            spin_lock(pcp.lock)
        try:
            where = free_unref_page(self.zone, pcp, pfn, order, mt)
        finally:
            if contended:
                spin_unlock(pcp.lock)
        if not pcp_allowed_order(order):
            assert where == "buddy"
        elif mt == MIGRATE_ISOLATE:
            assert where == "isolate"
        elif contended:
            assert where == "trylock"
        else:
            assert where == "pcp"
            if free_high:
                assert pcp.count == 0, f"free_high flush left count {pcp.count}"
            elif pcp.stats.freed_high_pages != flushed0:
                assert pcp.count <= before, f"flush left count {pcp.count} above {before} (high {high})"
            else:
                assert pcp.count < high, f"count {pcp.count} >= high {high} without a flush"
        if where != "pcp":
            assert pcp.count == before

    @precondition(lambda self: any(self.allocated))
    @rule(cpu=st.integers(0, 1), n=st.integers(1, 40))
    def free_list(self, cpu, n):
        pcp = self.pcps[cpu]
        pages = [(pfn, o, mt) for pfn, (o, mt) in list(self.allocated[cpu].items())[:n]]
        for pfn, _, _ in pages:
            del self.allocated[cpu][pfn]
        free_unref_page_list(self.zone, pcp, pages)

    @rule(cpu=st.integers(0, 1))
    def drain(self, cpu):
        pcp = self.pcps[cpu]
        n = pcp.count
        assert drain_pages_zone(self.zone, pcp) == n
        assert pcp.count == 0

    @rule()
    def toggle_reclaim(self):
        self.zone.reclaim_active = not self.zone.reclaim_active

    @rule(cpu=st.integers(0, 1), hb=st.sampled_from(HIGH_BATCH))
    def set_high_batch(self, cpu, hb):
        self.pcps[cpu].high, self.pcps[cpu].batch = hb

    @invariant()
    def conserved(self):
        holders = {}
        for cpu, pcp in enumerate(self.pcps):
            holders[f"cpu{cpu}.pcp"] = [(p, o) for p, o, _ in pcp.pages()]
            holders[f"cpu{cpu}.allocated"] = [(p, o) for p, (o, _) in self.allocated[cpu].items()]
        report = audit(self.zone, holders)
        assert report.ok, report.errors
        for pcp in self.pcps:
            assert check_pcp(pcp) == []
            assert not spin_is_locked(pcp.lock)


PcpMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPcpMachine = PcpMachine.TestCase
