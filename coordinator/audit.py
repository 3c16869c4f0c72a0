"""The cluster-wide audit in the coordinator process: coordinator.audit_rule's steps on the wall driver."""

import asyncio
from collections.abc import Callable
from typing import Protocol

from coordinator.audit_rule import audit
from coordinator.drain.wall import WallDriver, ZoneFrees
from coordinator.membership import Membership
from node.mm import audit as mm_audit


class HoldsDrainMutex(Protocol):
    """The drainer (coordinator.drain.drainer.Drainer) as the audit uses it."""

    pcpu_drain_mutex: asyncio.Lock


async def audit_cluster(
    membership: Membership,
    zone_service: ZoneFrees,
    drainer: HoldsDrainMutex,
    on_report: Callable[[mm_audit.AuditReport], object] | None = None,
) -> mm_audit.AuditReport:
    """`on_report(report)` is called once the audit completes (with either verdict), after the CPUs
    run again; an audit that fails to complete (a CPU did not answer) raises Unavailable naming the
    CPU, reports nothing and leaves every CPU as it found it."""
    report = await WallDriver(None, zone_service).run(audit(membership, drainer.pcpu_drain_mutex))
    if on_report is not None:
        on_report(report)
    return report
