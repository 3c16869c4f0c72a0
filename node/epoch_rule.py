"""The coordinator-epoch rule as a node applies it (node.epoch explains it and is its wall driver, with
a lock between the agent, the servicer and the CPU thread, and the verdicts raised as RPC errors;
node.virtual.agent applies it in virtual time). A verdict is the status code's name the node treats
the message as failing with, or None: act on it."""

STALE = "UNAVAILABLE"  # a reply of a replaced coordinator: as if no answer came
NEWER = "NOT_FOUND"  # the coordinator was replaced under this CPU's registration: register again, resuming
REFUSED = "FAILED_PRECONDITION"  # a request, or a zone reply, of a replaced coordinator


def stale_request(epoch: int, highest: int) -> str:
    """Why a request of coordinator `epoch` is refused (REFUSED) where `highest` has been seen."""
    return (
        f"request from coordinator epoch {epoch}, older than epoch {highest} seen here: that coordinator was replaced"
    )


class EpochRule:
    def __init__(self) -> None:
        self.highest = 0  # the highest epoch seen in any reply or request
        self.registered = 0  # the epoch of the coordinator this CPU's registration is with
        self.stale_requests_refused = 0
        self.stale_replies_ignored = 0

    def request(self, epoch: int) -> str | None:
        """A request from the coordinator: refused if its epoch is older (0: no epoch, not checked)."""
        if epoch == 0:
            return None
        if epoch < self.highest:
            self.stale_requests_refused += 1
            return REFUSED
        self.highest = epoch
        return None

    def reply(self, method: str, epoch: int) -> str | None:
        """A Register or Heartbeat reply (`method`) from coordinator `epoch`."""
        if epoch == 0:
            return None
        if epoch < self.highest:
            self.stale_replies_ignored += 1
            return STALE
        self.highest = epoch
        if method == "Register":
            self.registered = epoch
        elif epoch > self.registered:
            return NEWER
        return None

    def unregistered(self, epoch: int) -> bool:
        """Whether a zone refusal from coordinator `epoch` came from a coordinator this CPU has not
        registered with: its zone's books, rebuilt from the claims of the nodes that registered, hold
        nothing as this CPU's (and the zone before it may have applied the request). A free's pages
        are then given up, not kept (node.zone_client.ZoneRefused.other_zone). 0: no epoch, unknown."""
        return epoch > self.registered > 0

    def zone_reply(self, epoch: int) -> str | None:
        """A zone stream reply: refused if its epoch is older."""
        if epoch and epoch < self.highest:
            self.stale_replies_ignored += 1
            return REFUSED
        self.highest = max(self.highest, epoch)
        return None
