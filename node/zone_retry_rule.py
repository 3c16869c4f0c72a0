"""When a CPU asks the zone again: the rule both drivers follow (node.zone_client, wall; node.virtual.zone_rpc,
virtual). Times are wall seconds; the virtual driver divides them by its time scale.

- An attempt whose outcome is unknown (a broken stream, an injected failure, no answer within
  STREAM_TIMEOUT_S) may have been applied, and only the same request sent again with its transfer id can
  tell (node.mm.zone_rules answers a retry of an applied request with the first answer). So it is sent
  again without limit, `unknown_outcome_pause(attempt)` after the attempt: giving up would lose the pages
  of a refill the zone made, or duplicate those of a free it applied.
- A refusal UNAVAILABLE was not applied (a restarted coordinator rebuilding its zone, an injected
  refusal). It is asked again a few times, 0.05 s x n after the n-th, unless the CPU's membership lease
  has run out (`fenced`): then the call fails, and the CPU keeps its pages or parks.
"""

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
