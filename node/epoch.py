"""The coordinator epoch as a node sees it: fencing a coordinator that was replaced.

Each coordinator process takes an epoch at start, one more than any before it on its state
directory, durably before it serves (coordinator.store). It carries it in every reply to a
node (RegisterReply, HeartbeatReply, each ZoneStream reply) and in every request it sends
one (the `pcpsim-coordinator-epoch` header: PcpControl, QueueWork, FlushWork, SetRunState...).

The rule: a node keeps the highest epoch it has seen, and acts on nothing older.
- A request from an older epoch is refused with FAILED_PRECONDITION naming both epochs, so
  a replaced coordinator can neither drain a CPU's lists nor pause it.
- A reply from an older epoch is not acted on: a heartbeat reply does not renew the lease,
  a registration reply does not register; for the agent it is as if no answer came
  (UNAVAILABLE: the lease runs out on its own). A zone reply is refused like a zone error:
  a refill's pages are not put on the lists (they are recorded in the old coordinator's
  zone only, which nothing trusts any more; the new zone, rebuilt from the nodes' reports,
  never gave them to anyone), and a free the old zone applied leaves its pages with the
  node (the new zone still records them as this CPU's).
- A reply from a newer epoch than the one this CPU registered with means the coordinator
  was replaced under it: the agent registers again with `resume` and its pages (NOT_FOUND,
  as after a restart), and the reply is not acted on either.
Epoch 0 means "no epoch": the operator's tools send none (their calls are not checked),
and so does a coordinator run with the test-only --unsafe-no-epoch.

What this does not give: a node that has never heard from the new coordinator still obeys
the old one. Fencing only protects the nodes that have seen the newer epoch; a single
writer (one coordinator at a time: docs/deployment.md) is what keeps two zones apart.

The rule is node.epoch_rule's; this is its wall driver.
"""

import threading

import grpc

from node.api.epoch import request_epoch
from node.api.errors import FailedPrecondition
from node.epoch_rule import NEWER, STALE, EpochRule, stale_request
from node.shared.faults import InjectedRpcError


class StaleEpoch(InjectedRpcError):
    """A reply that must not be acted on, raised where a failed call's error would be, so the
    caller treats it as one (the agent catches RPC errors by their code)."""


class CoordinatorEpoch(EpochRule):
    """node.epoch_rule's rule under a lock: the agent (event loop), the servicer and the CPU thread."""

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()

    def check_request(self, metadata) -> None:
        """A request from the coordinator (its invocation metadata): refused if its epoch is older."""
        epoch = request_epoch(metadata)
        with self._lock:
            refused = self.request(epoch)
        if refused:
            raise FailedPrecondition(stale_request(epoch, self.highest))

    def admit(self, method: str, reply):
        """A coordinator's reply to the agent (`method`: "Register", "Heartbeat"): returned if it may be
        acted on, else StaleEpoch (UNAVAILABLE: as if unanswered; NOT_FOUND: register again)."""
        epoch = reply.coordinator_epoch
        with self._lock:
            verdict = self.reply(method, epoch)
        if verdict == STALE:
            raise StaleEpoch(
                grpc.StatusCode.UNAVAILABLE,
                f"{method} reply from coordinator epoch {epoch}, older than epoch {self.highest} seen here: "
                "not acted on",
            )
        if verdict == NEWER:
            raise StaleEpoch(
                grpc.StatusCode.NOT_FOUND,
                f"coordinator epoch {epoch} is newer than epoch {self.registered} this CPU registered with: "
                "it was replaced",
            )
        return reply

    def admit_zone(self, reply):
        """A zone stream reply: returned if it may be acted on, else StaleEpoch (the CPU thread's zone
        call fails; a refill adds nothing, a free's pages stay with the node)."""
        epoch = reply.coordinator_epoch
        with self._lock:
            refused = self.zone_reply(epoch)
        if refused:
            raise StaleEpoch(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"zone reply from coordinator epoch {epoch}, older than epoch {self.highest} seen here: not acted on",
            )
        return reply
