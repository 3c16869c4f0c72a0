"""Registering a CPU's process as an effect program (coordinator.drain.effects), the one both drivers
run: coordinator.registration on asyncio and the zone service, coordinator.virtual_members on node.sim's
event queue. coordinator.registration explains what it does; the decision is
coordinator.membership_rule.admit."""

import logging
from collections.abc import Callable
from typing import Any

from coordinator.drain.effects import Lock, Program, Unlock, ZoneLocked
from coordinator.membership_rule import Member, MembershipRule, admit
from node.api.errors import FailedPrecondition, Unavailable

log = logging.getLogger("coordinator.registration")


def _cpu_dead(zone: Any, cpu: int) -> int:
    result: int = zone.cpu_dead(cpu)
    return result


def _claim(zone: Any, cpu: int, holdings: list[Any]) -> int:
    result: int = zone.claim(cpu, holdings)
    return result


def register(
    membership: MembershipRule,
    mutex: object,
    cpu: int,
    incarnation: str,
    resume: bool,
    holdings: list[Any],
    holdings_epoch: int,
    recovering: Callable[[], bool],
    enrol: Callable[[], Member],
    online_changed: Callable[[int], None],
    link: tuple[str, int, str],
) -> Program[tuple[int, bool]]:
    """Register `cpu`'s process, asking from `link` (address, role, metrics address), under
    pcpu_drain_mutex (`mutex`): `enrol()` makes its member (the driver attaches its link),
    `online_changed(alive)` is zone_pcp_update; `holdings_epoch` the coordinator epoch the holdings
    are from (0: unknown). Returns (base pages of a previous process reclaimed, whether its holdings
    were claimed for it).

    A retry that changes nothing (its answer was lost: the node timed out and asks again) is answered
    at once, without the mutex. A drain in flight may be waiting for this very process, whose work
    runs only once it hears it is registered: behind the mutex the retry would wait for that drain,
    and the drain for it, until the flush or lease timeout broke the cycle (seed 800 of a 1,000-seed
    sweep: two flush timeouts in a row kept a restarted CPU parked past the run's liveness check)."""
    old = membership.members.get(cpu)
    if old is not None and admit(old, incarnation, resume, recovering, link).unchanged:
        membership.renew(old)
        return 0, old.resumed
    reclaimed = 0
    yield Lock(mutex)
    try:
        old = membership.members.get(cpu)
        admission = admit(old, incarnation, resume, recovering, link)
        if admission.retry:
            assert old is not None
            resumed = old.resumed
        else:
            if admission.reclaim:
                assert old is not None
                try:
                    membership.bury(old)
                except FailedPrecondition as err:
                    # Fenced in the store (coordinator.store.StoreFenced): a newer coordinator has started,
                    # and this one is no longer the coordinator. UNAVAILABLE, so the node asks again and
                    # reaches the one that is; as FAILED_PRECONDITION, a refusal, a node restarted while a
                    # second coordinator took over exited (sweep seed 4066 under the wall engine, 2026-12-07).
                    raise Unavailable(str(err)) from None
                reclaimed = yield ZoneLocked(_cpu_dead, (cpu,), f"cpu{cpu} replaced: page_alloc_cpu_dead")
                log.info(
                    "cpu%d replaced: %d base pages of its previous process back to the zone (page_alloc_cpu_dead)",
                    cpu,
                    reclaimed,
                )
            resumed = False
            if admission.claim and membership.was_declared_dead(cpu, incarnation):
                # A process declared dead by a coordinator that died before the node heard it: those
                # pages went back to the zone and on to other CPUs (sweep seed 1938, 2026-12-06).
                log.warning("recovery: cpu%d's holdings refused, it starts afresh: its process was declared dead", cpu)
            elif admission.claim and (rebuilt := membership.rebuilt_since(holdings_epoch)):
                # Counted free when that coordinator's recovery ended without this CPU's claim, and maybe
                # handed out since (coordinator.store.Store.rebuilt_since: sweep seed 4365, 2026-12-07).
                log.warning(
                    "recovery: cpu%d's holdings refused, it starts afresh: they are from coordinator epoch %d, "
                    "and epoch %d has rebuilt its zone without them since",
                    cpu,
                    holdings_epoch,
                    rebuilt,
                )
            elif admission.claim:
                resumed = yield from _claimed(cpu, holdings)
        member = enrol()
        member.resumed = resumed
        online_changed(membership.alive())
    finally:
        yield Unlock(mutex)
    return reclaimed, resumed


def _claimed(cpu: int, holdings: list[Any]) -> Program[bool]:
    try:
        pages = yield ZoneLocked(_claim, (cpu, holdings), f"cpu{cpu} resumes: claim")
    except FailedPrecondition as err:
        log.warning("recovery: cpu%d's holdings refused, it starts afresh: %s", cpu, err)
        return False
    log.info("recovery: cpu%d resumed holding %d base pages", cpu, pages)
    return True
