"""The cluster-wide audit as a rule: stop the world, count every page once, start the world.

Holds pcpu_drain_mutex (no drain in flight), parks every CPU not declared dead at a safe point
(no refill or free in flight), snapshots each node's pcp lists, held pages and
in-flight drain records, then, under zone->lock, checks conservation over the whole
zone with node.mm.audit.audit and cross-checks the zone's ownership records against
what each CPU says it holds. The CPUs run again whatever the outcome. The steps are
effects (coordinator.drain.effects): coordinator.audit runs them on the wall driver.
"""

from coordinator.drain.effects import Call, Failed, Gather, Lock, Program, Unlock, ZoneLocked
from coordinator.membership_rule import Member, MembershipRule
from node.api import validate
from node.api.errors import Unavailable
from node.api.v1 import pcpsim_pb2 as pb
from node.mm import audit as mm_audit
from node.mm.zone_rules import OWNER_KINDS

CALL_TIMEOUT_S = 10.0


def audit(membership: MembershipRule, pcpu_drain_mutex: object) -> Program[mm_audit.AuditReport]:
    """An audit that fails to complete (a CPU did not answer) raises Unavailable naming the CPU and
    leaves every CPU as it found it."""
    yield Lock(pcpu_drain_mutex)
    try:
        # Every member the zone may record pages for. Until 2026-12-07 only those whose heartbeats were
        # current: sweep seed 4180 under the wall engine, two runs at a time, found cpu4's heartbeats late
        # at the final audit, which skipped it and then found its 417 blocks unreported ("not ok"). A
        # member that cannot answer now fails the audit as incomplete (Unavailable), as it is.
        members = membership.holding()
        before = yield Gather(tuple(_set_paused(m, True) for m in members))
        try:
            _raise_first(members, before, "park")
            snaps = yield Gather(tuple(_snapshot(m) for m in members))
            for snap in snaps:
                if isinstance(snap, Failed):
                    raise Unavailable(f"the audit could not snapshot every CPU: {snap}")
                if isinstance(snap, BaseException):
                    raise snap
            report: mm_audit.AuditReport = yield ZoneLocked(
                _check, (membership, snaps), "audit: the zone's records against every CPU's"
            )
        finally:
            # Resume the CPUs this audit paused, and those whose pause has no known outcome (its
            # reply was lost: better to resume a CPU paused on purpose than to leave one held with
            # nobody to let it go). One paused on purpose before the audit stays paused.
            yield Gather(
                tuple(
                    _set_paused(m, False)
                    for m, b in zip(members, before, strict=True)
                    if isinstance(b, BaseException) or not b.was_paused
                )
            )
    finally:
        yield Unlock(pcpu_drain_mutex)
    return report


def reply(report: mm_audit.AuditReport) -> pb.AuditReply:
    """The Audit RPC's answer: counts, and the first examples of each kind."""
    return pb.AuditReply(
        ok=report.ok,
        total_pages=report.total_pages,
        lost=len(report.lost),
        duplicated=len(report.duplicated),
        unexpected=len(report.unexpected),
        lost_pfns=report.lost[:20],
        duplicated_pfns=report.duplicated[:20],
        errors=report.errors[:50],
        where=report.where,
    )


def _set_paused(member: Member, paused: bool) -> Program[pb.RunStateReply]:
    request = pb.RunStateRequest(cpu=member.cpu, paused=paused)
    reply: pb.RunStateReply = yield Call(member, "SetRunState", request, CALL_TIMEOUT_S, None)
    return reply


def _snapshot(member: Member) -> Program[pb.NodeSnapshot]:
    reply: pb.NodeSnapshot = yield Call(member, "Snapshot", pb.CpuRequest(cpu=member.cpu), CALL_TIMEOUT_S, None)
    return reply


def _raise_first(members: list[Member], outcomes: list[object], what: str) -> None:
    """Unavailable naming the first CPU whose call failed, with the node's own status."""
    for m, outcome in zip(members, outcomes, strict=True):
        if isinstance(outcome, Failed):
            raise Unavailable(f"the audit could not {what} cpu {m.cpu}: {outcome}")
        if isinstance(outcome, BaseException):
            raise outcome


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
