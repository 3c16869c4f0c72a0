"""The coordinator-epoch rule as a node applies it (node.epoch explains it and is its wall driver, with
a lock between the agent, the servicer and the CPU thread, and the verdicts raised as RPC errors;
node.virtual.agent applies it in virtual time). A verdict is the status code's name the node treats
the message as failing with, or None: act on it."""

STALE = "UNAVAILABLE"  # a reply of a replaced coordinator: as if no answer came
NEWER = "NOT_FOUND"  # the coordinator was replaced under this CPU's registration: register again, resuming
REFUSED = "FAILED_PRECONDITION"  # a request, or a zone reply, of a replaced coordinator


def stale_request(epoch: int, highest: int) -> str:
    """Why a request of coordinator `epoch` is refused (REFUSED) where `highest` has been seen."""
    if epoch >= highest:  # EpochRule.resuming: the coordinator this CPU is re-registering away from
        return (
            f"request from coordinator epoch {epoch}, which this CPU registered with: it is registering again "
            "(resuming, its pages reported to the coordinator that replaced it) and obeys it no more"
        )
    return (
        f"request from coordinator epoch {epoch}, older than epoch {highest} seen here: that coordinator was replaced"
    )


class EpochRule:
    def __init__(self) -> None:
        self.highest = 0  # the highest epoch seen in any reply or request
        self.registered = 0  # the epoch of the coordinator this CPU's registration is with
        self.stale_requests_refused = 0
        self.stale_replies_ignored = 0
        # A Register with resume is on its way (sent, not yet answered): the pages it reports, a grant's
        # included, are the new coordinator's to claim, so the one this CPU was registered with (whose
        # NOT_FOUND or replacement sent it there, and whose epoch the node may not know is over) must
        # not take any of them now: its drain's commit would free into its own zone pages the new zone
        # records as this CPU's. Set by the agent with the holdings it reports; a Register reply ends it.
        self.resuming = False

    def request(self, epoch: int) -> str | None:
        """A request from the coordinator: refused if its epoch is older (0: no epoch, not checked)."""
        if epoch == 0:
            return None
        if epoch < self.highest or (self.resuming and epoch <= self.registered):
            self.stale_requests_refused += 1
            return REFUSED
        self.highest = epoch
        return None

    def reply(self, method: str, epoch: int) -> str | None:
        """A Register or Heartbeat reply (`method`) from coordinator `epoch`."""
        if epoch and epoch < self.highest:
            self.stale_replies_ignored += 1
            return STALE
        if method == "Register":
            self.resuming = False
        if epoch == 0:
            return None
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
        are then given up, not kept (node.zone_retry_rule.ZoneRefused.other_zone). 0: no epoch, unknown."""
        return epoch > self.registered > 0

    def zone_reply(self, epoch: int) -> str | None:
        """A zone stream reply: refused if its epoch is older."""
        if epoch and epoch < self.highest:
            self.stale_replies_ignored += 1
            return REFUSED
        self.highest = max(self.highest, epoch)
        return None
