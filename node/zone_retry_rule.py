"""When a CPU asks the zone again: the rule both drivers follow (node.zone_client, wall; node.virtual.zone_rpc,
virtual), and the refusal both raise (ZoneRefused). Times are wall seconds; the virtual driver divides
them by its time scale.

- An attempt whose outcome is unknown (a broken stream, an injected failure, no answer within
  STREAM_TIMEOUT_S) may have been applied, and only the same request sent again with its transfer id can
  tell (node.mm.zone_rules answers a retry of an applied request with the first answer). So it is sent
  again without limit, `unknown_outcome_pause(attempt)` after the attempt: giving up would lose the pages
  of a refill the zone made, or duplicate those of a free it applied.
- A refusal UNAVAILABLE was not applied (a restarted coordinator rebuilding its zone, an injected
  refusal). It is asked again a few times, 0.05 s x n after the n-th, unless the CPU's membership lease
  has run out (`fenced`): then the call fails, and the CPU keeps its pages or parks.
"""


class ZoneRefused(Exception):
    """The zone answered but refused the operation (it changed nothing). `other_zone`: the refusal
    came from a coordinator this CPU has not registered with (node.epoch_rule.EpochRule.unregistered):
    that zone's books hold nothing as this CPU's, and the zone before it may have applied the request,
    so a free's pages are given up, not kept. Found by the 1,000-seed sweep (seeds 344 and 516: a node
    whose free was in flight across a coordinator's restart, so that it could not register and claim
    its pages, kept them when the new zone refused the free, after giving them to other CPUs)."""

    def __init__(self, code: str, detail: str, other_zone: bool = False):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.other_zone = other_zone


STREAM_TIMEOUT_S = 2.0  # one attempt's bound
UNAVAILABLE_RETRIES = 5


def unknown_outcome_pause(attempt: int) -> float:
    """Seconds before sending again the `attempt`-th attempt (1, 2, ...) whose outcome is unknown."""
    return min(0.5, 0.01 * attempt)


def unavailable_pause(retried: int, retries: int, fenced: bool) -> float | None:
    """Seconds before asking again after a refusal UNAVAILABLE, when `retried` of them were asked again
    already and `retries` may be; None: give up (ZoneRefused UNAVAILABLE)."""
    if retried >= retries or fenced:
        return None
    return 0.05 * (retried + 1)
