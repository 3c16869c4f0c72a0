"""Input validation shared by both services, and the limits of the wire contract both
processes read (the coordinator's flags are bounded by what a node accepts). Every check
raises InvalidArgument."""

import math
from collections.abc import Iterable

from node.api.errors import InvalidArgument
from node.api.v1 import pcpsim_pb2 as pb
from node.mm.constants import MAX_ORDER, MIGRATE_TYPES, MIGRATETYPE_NAMES, Page

MAX_PAGES_PER_MESSAGE = 1 << 16
MAX_TRANSFER_ID = 128  # characters; a node's ids are ~30 (node.zone_client)
MAX_LEASE_MS = 60_000  # the longest remote pcp lock lease, or rcu-swap grace period wait, a drainer may ask for
MAX_FLUSH_MS = 600_000  # the longest a FlushWork may wait for its work item


def order(value: int) -> int:
    if not 0 <= value < MAX_ORDER:
        raise InvalidArgument(f"order {value} out of range 0..{MAX_ORDER - 1}")
    return value


def migratetype(value: int) -> int:
    if not 0 <= value < MIGRATE_TYPES:
        raise InvalidArgument(
            f"migratetype {value} out of range 0..{MIGRATE_TYPES - 1} ({', '.join(MIGRATETYPE_NAMES)})"
        )
    return value


def cpu(value: int, nr_cpus: int) -> int:
    if not 0 <= value < nr_cpus:
        raise InvalidArgument(f"cpu {value} out of range 0..{nr_cpus - 1}")
    return value


def count(value: int, limit: int, what: str = "count") -> int:
    if not 1 <= value <= limit:
        raise InvalidArgument(f"{what} {value} out of range 1..{limit}")
    return value


def transfer_id(value: str) -> str:
    if not value:
        raise InvalidArgument("transfer_id is required")
    if len(value) > MAX_TRANSFER_ID:
        raise InvalidArgument(f"transfer_id of {len(value)} characters, limit {MAX_TRANSFER_ID}")
    return value


def work_kind(value: int) -> int:
    """QueueWork's kind: drain_local_pages_wq is the one work item a drainer queues."""
    if value != pb.WORK_DRAIN_LOCAL_PAGES:
        raise InvalidArgument(f"unknown work kind {value}")
    return value


def token(value: int) -> int:
    """A grant's token (remote pcp lock, rcu-swap) as the drainer hands it back."""
    if value == 0:
        raise InvalidArgument("token 0 is never granted")
    return value


def page_list(pages) -> list[tuple[int, int, int]]:
    """Check a PageList message and return (pfn, order, migratetype) tuples.

    Lengths must agree, each order and migratetype must be valid, and no pfn may
    appear twice (a duplicate would free a page twice).
    """
    n = len(pages.pfn)
    if len(pages.order) != n or len(pages.migratetype) != n:
        raise InvalidArgument(
            f"page list arrays differ in length: pfn {n}, order "
            f"{len(pages.order)}, migratetype {len(pages.migratetype)}"
        )
    if n > MAX_PAGES_PER_MESSAGE:
        raise InvalidArgument(f"{n} pages in one message, limit {MAX_PAGES_PER_MESSAGE}")
    out = []
    for pfn, o, mt in zip(pages.pfn, pages.order, pages.migratetype, strict=True):
        out.append((pfn, order(o), migratetype(mt)))
    if len({p for p, _, _ in out}) != n:
        raise InvalidArgument("page list names a pfn twice")
    return out


def to_page_list(msg_cls: type[pb.PageList], pages: Iterable[Page]) -> pb.PageList:
    """Build a PageList message from (pfn, order, migratetype) tuples."""
    msg = msg_cls()
    if pages:
        pfns, orders, mts = zip(*pages, strict=True)
        msg.pfn.extend(pfns)
        msg.order.extend(orders)
        msg.migratetype.extend(mts)
    return msg


MAX_EVENT_WINDOW_S = 10.0  # the longest events window GetStats returns (a drain window is ms long)


def event_window(start: float, end: float) -> tuple[float, float]:
    """GetStats' events_from_s..events_to_s: finite, start < end, at most MAX_EVENT_WINDOW_S long."""
    if not (math.isfinite(start) and math.isfinite(end)) or not 0 <= start < end:
        raise InvalidArgument(f"events window [{start}, {end}] must be finite with 0 <= events_from_s < events_to_s")
    if end - start > MAX_EVENT_WINDOW_S:
        raise InvalidArgument(
            f"events window [{start}, {end}] is {end - start:g} s long; at most {MAX_EVENT_WINDOW_S:g} s"
        )
    return start, end
