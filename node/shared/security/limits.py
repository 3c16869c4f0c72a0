"""Message size limits, as gRPC server and channel options.

A server refuses (RESOURCE_EXHAUSTED, before buffering it whole) any request larger than
max_request_bytes(), computed from the largest legitimate request. Replies may be larger (a
Snapshot of a node holding many pages): MAX_REPLY_BYTES bounds what a client takes.
"""

import functools

from node.api import validate
from node.api.v1 import pcpsim_pb2 as pb
from node.mm.constants import MAX_ORDER, MIGRATE_TYPES
from node.shared import transport

# The largest reply is a Snapshot: three page lists of a node (pcp, allocated, in flight).
# 12 bytes a block at worst, so 64 MiB covers 5.5 M blocks (21 GiB of base pages in one node's
# hands, more than a node holds with any working set the zone can back).
MAX_REPLY_BYTES = 64 << 20


@functools.cache
def max_request_bytes() -> int:
    """The largest request a server takes: the largest legitimate one rounded up to a KiB,
    769 KiB (every other request is a few hundred bytes at most). Computed at first use, as
    it encodes a message of MAX_PAGES_PER_MESSAGE blocks."""
    return (_largest_request_bytes() // 1024 + 1) * 1024


def _largest_request_bytes() -> int:
    """The largest legitimate request: a page list of MAX_PAGES_PER_MESSAGE blocks with the
    widest encodings (a 10-byte pfn varint, the top order and migratetype), either freed on
    the zone stream with the longest transfer id, or reported as a node's holdings when it
    registers again, with the longest names (membership.MAX_NAME: 255)."""
    n = validate.MAX_PAGES_PER_MESSAGE
    pages = pb.PageList(pfn=[(1 << 64) - 1] * n, order=[MAX_ORDER - 1] * n, migratetype=[MIGRATE_TYPES - 1] * n)
    name = "x" * 255
    free = pb.ZoneRequest(
        free=pb.FreePagesRequest(
            cpu=(1 << 32) - 1, pages=pages, incarnation=name, transfer_id="x" * validate.MAX_TRANSFER_ID
        )
    )
    # protoc's stubs type Role.values() as ints, which the Role-typed field does not take.
    register = pb.RegisterRequest(
        cpu=(1 << 32) - 1,
        address=name,
        role=max(pb.Role.values()),  # type: ignore[arg-type]
        incarnation=name,
        metrics_address=name,
        resume=True,
        holdings=pages,
    )
    return max(free.ByteSize(), register.ByteSize())


def server_options() -> list:
    """Size limits, and node.shared.transport's keepalive pings accepted."""
    return [
        ("grpc.max_receive_message_length", max_request_bytes()),
        ("grpc.max_send_message_length", MAX_REPLY_BYTES),
        *transport.SERVER_OPTIONS,
    ]


def channel_options(peer: bool) -> list:
    """Size limits, and node.shared.transport's reconnects and connection bound for a peer's
    channel or a caller's (every channel here is one between pcpsim processes)."""
    return [
        ("grpc.max_receive_message_length", MAX_REPLY_BYTES),
        ("grpc.max_send_message_length", max_request_bytes()),
        *transport.channel_options(peer),
    ]
