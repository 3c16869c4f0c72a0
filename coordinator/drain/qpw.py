"""drain_all_pages as if written with pw_queue_on(): the QPW / PW locks proposal (Tosatti and Bras,
2026, not merged; docs/kernel-facts.md §11).

v4's `pw_queue_on(cpu, wq, pw)` (`<20260519012754.240804-2-leobras.c@gmail.com>`, include/linux/pwlocks.h)
either runs the work function on the caller, which takes the target CPU's per-CPU lock as a spinlock,
or queues it with queue_work_on. The choice is one static key (`pw_sl`) for every target CPU. It does
not depend on the target's isolation. With CONFIG_PWLOCKS=y and no `pwlocks=` boot parameter,
pwlocks_init() (v3+) turns the key on when housekeeping_enabled(HK_TYPE_KERNEL_NOISE): some CPU is
NOHZ_FULL. In pcpsim that is a CPU with an isolated role, which the coordinator is told at start
(`--nohz-full`, as the kernel's boot parameter).
So a qpw drain is the remote drain (lease, fencing, commit-then-free) of every marked CPU when the
cluster has an isolated CPU, and the workqueue drain of every marked CPU when it has none. The
proposal never converts drain_all_pages: since v6.0 the pcp lists already work like the key's "on"
side. This strategy shows that it lands there.
"""

from collections.abc import Collection, Iterable

from coordinator.drain.effects import Program
from coordinator.drain.record import CpuDrain
from coordinator.drain.strategy import DrainerView, DrainStrategy
from coordinator.membership_rule import Member
from node.shared.cpulist import NOHZ_FULL_ROLES


def pw_sl_enabled(nohz_full: Collection[int], roles: Iterable[int]) -> bool:
    """The key after pwlocks_init(): on when any CPU is isolated (housekeeping_enabled(HK_TYPE_KERNEL_NOISE)).
    This is a boot-time property of the machine: the coordinator's nohz_full= (`--nohz-full`), known
    before any CPU registers and after a restart; when it was not given, every registered CPU's role,
    not only the marked ones'. (Before 2026-12-06 only the roles: a restarted coordinator that no
    isolated CPU had registered with yet queued work, sweep seed 120.)"""
    return bool(nohz_full) or any(role in NOHZ_FULL_ROLES for role in roles)


def qpw_strategy(queue_work_on: DrainStrategy, requester_side: DrainStrategy) -> DrainStrategy:
    """The qpw strategy, built on the two protocols it picks between (so that only drain_all imports
    strategies): `queue_work_on` when the key is off, `requester_side` (the remote pcp lock) when on."""

    def drain_qpw(drainer: DrainerView, marked: list[Member]) -> Program[list[CpuDrain]]:
        membership = drainer.membership
        on = pw_sl_enabled(membership.nohz_full, (m.role for m in membership.members.values()))
        return (yield from (requester_side if on else queue_work_on)(drainer, marked))

    return drain_qpw
