"""The coordinator epoch on the wire (node.epoch has the rule nodes apply to it).

Replies carry it in their `coordinator_epoch` field; requests a coordinator sends a node
carry it in one header, so every method and stream of the Node service has it without a
field of its own. 0, or no header, means no epoch (the operator's tools send none).
"""

from node.api.errors import InvalidArgument

HEADER = "pcpsim-coordinator-epoch"
MAX_EPOCH = (1 << 63) - 1


def epoch_metadata(epoch: int) -> tuple:
    """The headers a coordinator of `epoch` puts on each request to a node (none for 0)."""
    return ((HEADER, str(epoch)),) if epoch else ()


def request_epoch(metadata) -> int:
    """The epoch a request's invocation metadata carries (0: none); a malformed one is INVALID_ARGUMENT."""
    values = [v for k, v in (metadata or ()) if k == HEADER]
    if not values:
        return 0
    try:
        epoch = int(values[-1])
    except ValueError:
        raise InvalidArgument(f"{HEADER} {values[-1][:40]!r} is not an integer") from None
    if not 0 <= epoch <= MAX_EPOCH:
        raise InvalidArgument(f"{HEADER} {epoch} out of range 0..{MAX_EPOCH}")
    return epoch
