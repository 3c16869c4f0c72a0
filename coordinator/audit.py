"""The cluster-wide audit: stop the world, count every page once, start the world.

Holds pcpu_drain_mutex (no drain in flight), parks every online CPU at a safe point
(no refill or free in flight), snapshots each node's pcp lists, held pages and
in-flight drain records, then, under zone->lock, checks conservation over the whole
zone with node.mm.audit.audit and cross-checks the zone's ownership records against
what each CPU says it holds. The CPUs run again whatever the outcome.
"""

import asyncio

from coordinator.zone_service import OWNER_KINDS
from node.api import validate
from node.api.v1 import pcpsim_pb2 as pb
from node.mm import audit as mm_audit


async def audit_cluster(membership, zone_service, drainer, on_report=None) -> mm_audit.AuditReport:
    """`on_report(report)` is called once the audit completes (with either verdict), after the CPUs
    run again; an audit that fails to complete (a CPU did not answer) raises and reports nothing."""
    async with drainer.pcpu_drain_mutex:
        members = membership.present()  # a CPU taken offline still holds its tasks' pages
        before = await asyncio.gather(
            *(m.stub.SetRunState(pb.RunStateRequest(cpu=m.cpu, paused=True), timeout=10.0) for m in members)
        )
        try:
            snaps = await asyncio.gather(*(m.stub.Snapshot(pb.CpuRequest(cpu=m.cpu), timeout=10.0) for m in members))
            report = await zone_service.locked(_check, zone_service, membership, snaps)
        finally:
            # Resume only the CPUs that were running: one paused on purpose stays paused.
            await asyncio.gather(
                *(
                    m.stub.SetRunState(pb.RunStateRequest(cpu=m.cpu, paused=False), timeout=10.0)
                    for m, b in zip(members, before, strict=True)
                    if not b.was_paused
                ),
                return_exceptions=True,
            )
    if on_report is not None:
        on_report(report)
    return report


def _check(zone_service, membership, snaps) -> mm_audit.AuditReport:
    holders = {}
    node_pages = {}
    errors = []
    for snap in snaps:
        cpu = snap.cpu
        mine = set()
        for kind, lst in (("pcp", snap.pcp_pages), ("allocated", snap.allocated), ("inflight", snap.inflight)):
            pages = [(pfn, order) for pfn, order, _ in validate.page_list(lst)]
            holders[f"cpu{cpu}.{kind}"] = pages
            mine.update(pages)
        node_pages[cpu] = mine
        if snap.running:  # its pages may have moved while they were copied: nothing here is exact
            errors.append(f"cpu{cpu}: still running when snapshotted (not parked)")
        errors.extend(f"cpu{cpu}: {e}" for e in snap.errors)
    owned = zone_service.holdings()
    for owner, name in OWNER_KINDS.items():  # the rest of the system, CMA and offline ranges
        holders[name] = owned.get(owner, [])
    seen = {s.cpu for s in snaps}
    for cpu in sorted(set(owned) - set(OWNER_KINDS) - seen):
        errors.append(f"cpu{cpu} holds {len(owned[cpu])} blocks by the zone's records but did not report")
        holders[f"cpu{cpu}.unreported"] = owned[cpu]
    for cpu, mine in node_pages.items():
        recorded = set(owned.get(cpu, []))
        if mine != recorded:
            errors.append(
                f"cpu{cpu}: zone records {len(recorded - mine)} blocks the CPU does not "
                f"hold and the CPU holds {len(mine - recorded)} blocks the zone did not give it"
            )
    report = mm_audit.audit(zone_service.zone, holders)
    report.errors.extend(errors)
    report.ok = report.ok and not errors
    return report
