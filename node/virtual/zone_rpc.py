"""A virtual CPU's zone round trip under the network's fault rules (a chaos run's node.virtual.zone).

The wall client (node.zone_client.ZoneClient._call) sends each zone request on its ZoneStream and waits
for the answer within the stream's timeout; when it sends again, and how long it waits first, is
node.zone_retry_rule's, which this driver follows too. Here each attempt is a SimNetwork.request from the CPU to the
coordinator's endpoint, named "ZoneStream.<op>" as the wall rules name it, so a partition, a stopped or
killed endpoint, and the rpc faults (delay, drop, dropped reply, failure) reach the zone's messages at
exact virtual instants. The CPU's fiber waits for the outcome: when the request arrives it is resumed to
do the zone's side (node.virtual.zone.LocalZone.apply: zone->lock, the rules, the hold), then it waits
for the answer or the bound. The wall figures (its timeout, its pauses) are divided by TIME_SCALE.

While the CPU's process is stopped its fiber runs only the zone's side of a request that arrives (the
coordinator's work, on this fiber: node.virtual.cpu's note); a timeout or an answer is acted on at
SIGCONT, as the stopped wall client's are.

A zone that answers UNAVAILABLE unapplied (`refusal`: a restarted coordinator rebuilding its zone) is
asked again as the rule says, unless the CPU's lease has run out (`fenced`); then the call fails with
ZoneRefused UNAVAILABLE, as the wall client's does.

A killed process's call ends with it: its fiber is closed where it waits (node.virtual.run.VirtualCluster.kill),
so no attempt of it is made again, and a request of it still on its way is never applied (the zone's side
runs on that fiber): one of the outcomes a killed wall process's request on the wire has.
"""

from collections.abc import Callable
from typing import Any

from node.shared.timebase import TIME_SCALE
from node.sim.net import SimNetwork
from node.zone_retry_rule import (
    STREAM_TIMEOUT_S,
    UNAVAILABLE_RETRIES,
    ZoneRefused,
    unavailable_pause,
    unknown_outcome_pause,
)


class NotApplied:
    """The zone's answer without applying the request (code UNAVAILABLE)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class CoordinatorKilled(Exception):
    """The coordinator process serving a request was killed before it answered (LocalZone.apply): the
    network has reset the request, so its sender hears the stream fail and nothing is answered."""


COORDINATOR = "coordinator"  # the zone's end: the coordinator process serves it


class ZoneRpc:
    def __init__(
        self,
        net: SimNetwork,
        endpoint: object = COORDINATOR,
        time_scale: float = TIME_SCALE,
        refusal: Callable[[], str | None] = lambda: None,
        fenced: Callable[[int], bool] = lambda cpu: False,
    ) -> None:
        self.net = net
        self.endpoint = endpoint
        self.time_scale = time_scale
        self.refusal = refusal  # why the zone answers UNAVAILABLE unapplied now, or None
        self.fenced = fenced  # whether CPU n's membership lease has run out
        self.retries = 0  # attempts whose outcome was unknown (ZoneClient.unknown_outcomes)

    def __call__(self, zone: Any, method: str, send: Callable[[], Callable[[str | None], Any]]) -> Any:
        """From the fiber of `zone.cpu` (a node.virtual.zone.LocalZone): the zone's outcome of the
        request; send() at each attempt's sending gives what the zone does on its arrival, called with
        why the coordinator serving then refuses it unapplied (None: it applies it). The zone is the one
        serving at the arrival, not at the sending: a message held meanwhile (its sender stopped, or the
        coordinator) reaches whichever coordinator listens when it is delivered."""
        cpu = zone.cpu
        attempt = unavailable = 0
        while True:
            attempt += 1
            got = self._attempt(cpu, method, send())
            if not got:
                self.retries += 1
                cpu.wait_until(cpu.clock() + unknown_outcome_pause(attempt) / self.time_scale)
                continue
            if not isinstance(got[0], NotApplied):
                return got[0]
            pause = unavailable_pause(unavailable, UNAVAILABLE_RETRIES, self.fenced(cpu.cpu))
            if pause is None:
                raise ZoneRefused("UNAVAILABLE", got[0].reason)
            unavailable += 1
            cpu.wait_until(cpu.clock() + pause / self.time_scale)

    def _attempt(self, cpu: Any, method: str, apply: Callable[[str | None], Any]) -> list[Any]:
        """One request: [outcome], or [] when its outcome is unknown (failed, lost, or past the bound)."""
        inbox: list[tuple[str, Any]] = []
        waiting = [False]

        def post(kind: str, value: Any = None) -> None:
            inbox.append((kind, value))
            # A stopped CPU's fiber still runs the zone's side at once: the coordinator's work (VirtualCpu's note).
            serving = kind == "arrived" and cpu.sigstop.stopped
            if waiting[0] or serving:
                waiting[0] = False
                cpu.resume_soon(serving)

        self.net.request(
            cpu.cpu,
            self.endpoint,
            method,
            lambda respond: post("arrived", respond),
            lambda outcome: post("answer", outcome),
            lambda code, detail: post("failed"),
        )
        cpu.queue.after(STREAM_TIMEOUT_S / self.time_scale, post, "expired")
        return self._outcome(cpu, inbox, waiting, apply)

    def _outcome(
        self, cpu: Any, inbox: list[tuple[str, Any]], waiting: list[bool], apply: Callable[[str | None], Any]
    ) -> list[Any]:
        while True:
            while not inbox:
                waiting[0] = True
                cpu.wait_resumed()
            if cpu.sigstop.stopped:  # only the zone's side runs until SIGCONT
                arrived = next((i for i, (kind, _) in enumerate(inbox) if kind == "arrived"), None)
                if arrived is None:
                    waiting[0] = True
                    cpu.wait_cont()
                    continue
                kind, value = inbox.pop(arrived)
            else:
                kind, value = inbox.pop(0)
            if kind == "arrived":  # the zone's side, on this fiber, then the answer travels back
                cpu.serving = True
                try:
                    answer = apply(self.refusal())
                except CoordinatorKilled:
                    continue  # no answer: the reset is in the inbox, or comes
                finally:
                    cpu.serving = False
                value(answer)
            elif kind == "answer":
                return [value]
            else:
                return []
