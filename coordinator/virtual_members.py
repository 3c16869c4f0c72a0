"""The virtual driver of membership (docs/engine.md, rule 6): the coordinator's Register and Heartbeat
answered by coordinator.membership_rule and coordinator.registration_rule in virtual time, and the
reaper a timer event on node.sim's event queue whose round (coordinator.reaper_rule) runs on
coordinator.drain.virtual's driver, pcpu_drain_mutex included. A DeclareDead, the reaper's or a drain's
(coordinator.drain.control), is `kill`: give the driver `kill` as its declare_dead. Nothing here reads a
wall clock; the order of every step is the event queue's. Times are the rules' (the driver's
`rule_clock`, its `scale`), the reaper's interval too.
"""

from collections.abc import Callable
from typing import Any

from coordinator import reaper_rule, registration_rule
from coordinator.drain.virtual import VirtualDriver, VirtualMutex
from coordinator.membership_rule import Member, MembershipRule, ZoneState, answer_heartbeat, excused
from node.api import validate
from node.api.errors import DOMAIN_ERRORS
from node.api.v1 import pcpsim_pb2 as pb


class NoPageset:
    """Where a cluster has no pageset to size (unit tests of membership alone): zone_pcp_update does nothing."""

    high = 0
    high_max = 0
    batch = 0

    def zone_pcp_update(self, online: int) -> None:
        pass


class NoZone:
    """Where a cluster has no zone to report (unit tests of membership alone): a heartbeat reply says
    nothing is free and no reclaim is active."""

    free_pages = 0
    reclaim_active = False
    below_high = False


class VirtualMembers:
    def __init__(
        self,
        membership: MembershipRule,
        driver: VirtualDriver,
        mutex: VirtualMutex,
        pageset: Any = None,
        epoch: int = 0,
        recovering: Callable[[], bool] = lambda: False,
        zone: ZoneState | None = None,
    ) -> None:
        """`driver.zone` takes a dead or replaced CPU's pages back (cpu_dead) and claims a resuming
        one's (claim); `pageset` is coordinator.pageset.Pageset; `epoch` this coordinator's
        (0: none); `recovering` whether it still rebuilds its zone (coordinator.recovery); `zone` the
        buddy whose free pages and ZONE_RECLAIM_ACTIVE heartbeat replies carry."""
        self.membership = membership
        self.driver = driver
        self.queue = driver.queue
        self.mutex = mutex  # pcpu_drain_mutex, the one the drains run under
        self.pageset = pageset or NoPageset()
        self.zone: ZoneState = zone or NoZone()
        self.epoch = epoch
        self.recovering = recovering
        self.deaths: list[tuple[float, int]] = []  # (virtual instant, cpu)

    # ------------------------------------------------------------------ the service
    def handle(self, method: str, request: Any, reply: Callable[[Any], None]) -> None:
        """A request arrived: `reply` gets the answer, or the domain error it was refused with."""
        try:
            if method == "Heartbeat":
                reply(self._heartbeat(request))
            elif method == "Register":
                self._register(request, reply)
            else:
                raise ValueError(f"no virtual {method}")
        except DOMAIN_ERRORS as err:
            reply(err)

    def _heartbeat(self, request: pb.HeartbeatRequest) -> pb.HeartbeatReply:
        return answer_heartbeat(self.membership, request, self.zone, self.pageset, self.recovering(), self.epoch)

    def _register(self, request: pb.RegisterRequest, reply: Callable[[Any], None]) -> None:
        m = self.membership
        m.check_registration(request.cpu, request.address, request.role, request.metrics_address, request.incarnation)
        holdings = validate.page_list(request.holdings) if request.resume else []

        def enrol() -> Member:
            return m.enrol(request.cpu, request.address, request.role, request.metrics_address, request.incarnation)[0]

        def done(value: Any, error: BaseException | None) -> None:
            if error is not None:
                reply(error)
                return
            reclaimed, resumed = value
            reply(
                pb.RegisterReply(
                    nr_cpus=m.nr_cpus,
                    high=self.pageset.high,
                    high_max=self.pageset.high_max,
                    batch=self.pageset.batch,
                    reclaimed_pages=reclaimed,
                    lease_ms=round(m.lease * 1000),
                    dead_ms=round(m.dead_timeout * 1000),
                    resumed=resumed,
                    recovering=self.recovering(),
                    heartbeat_interval_ms=round(m.heartbeat_interval() * 1000),
                    coordinator_epoch=self.epoch,
                )
            )

        program = registration_rule.register(
            m,
            self.mutex,
            request.cpu,
            request.incarnation,
            request.resume,
            holdings,
            request.holdings_epoch,
            self.recovering,
            enrol,
            self.pageset.zone_pcp_update,
            (request.address, request.role, request.metrics_address),
        )
        self.driver.start(program, done)

    # ------------------------------------------------------------------ the reaper
    def kill(self, member: Member) -> int:
        """page_alloc_cpu_dead for `member` (coordinator.hotplug.Reaper.kill's steps)."""
        self.membership.declare_dead(member)
        self.pageset.zone_pcp_update(self.membership.alive())
        pages: int = self.driver.zone.cpu_dead(member.cpu)  # type: ignore[attr-defined]
        self.deaths.append((self.queue.clock.now, member.cpu))
        return pages

    def start_reaper(self, interval: float) -> None:
        """A reaper round now and every `interval` after the one before has ended."""
        self._round(interval, self.driver.rule_clock() - interval)

    def _round(self, interval: float, before: float) -> None:
        if self.driver.sigstop.held(self._round, interval, before):  # the process is stopped: so is its timer
            return
        late = self.driver.rule_clock() - before - interval
        if excused(late, interval, self.membership.failure_timeout):
            self.membership.excuse(late)

        def done(value: Any, error: BaseException | None) -> None:
            if error is not None:
                raise error
            start = self.driver.rule_clock()
            self.queue.after(self.driver.virtual(interval), self._round, interval, start)

        self.driver.start(reaper_rule.reap(self.membership, self.mutex), done)
