"""The reaper's round as an effect program (coordinator.drain.effects): every overdue member is
re-checked with no drain in flight (under pcpu_drain_mutex) and declared dead (DeclareDead:
page_alloc_cpu_dead). coordinator.virtual_members runs it as a timer event on node.sim's event queue;
coordinator.hotplug.Reaper is the wall driver of the same decisions (coordinator.membership_rule:
overdue, reapable)."""

import logging

from coordinator.drain.effects import DeclareDead, Lock, Program, Unlock
from coordinator.membership_rule import MembershipRule
from node.api.errors import FailedPrecondition

log = logging.getLogger("coordinator.reaper")


def reap(membership: MembershipRule, mutex: object) -> Program[list[int]]:
    """Declare every overdue member dead; returns their CPUs. A coordinator fenced in the store (a newer
    one has started on it: coordinator.store.StoreFenced) declares nobody dead and ends the round."""
    dead = []
    for member in membership.overdue():
        yield Lock(mutex)
        try:
            if membership.reapable(member):
                yield DeclareDead(member)
                dead.append(member.cpu)
        except FailedPrecondition as err:
            log.warning("cpu%d not declared dead: %s", member.cpu, err)
            break
        finally:
            yield Unlock(mutex)
    return dead
