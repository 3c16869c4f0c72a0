"""The zone's pageblock migratetypes travel to the nodes on zone replies (node.zone_client), so a live
node frees a page with its block's type at free time, as free_unref_page_prepare() does. Against a
real coordinator: a copy is sent to a node whose version is not the zone's, not sent again while it
is, and a steal makes a new one in which the stolen block has its new type."""

from node.api.v1 import pcpsim_pb2 as pb
from node.mm.constants import MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE, pageblock_order
from tests.integration.conftest import HK_HK_IDLE, RPC_TIMEOUT, assert_audit_ok, transfer_id, wait_until

IDLE_CPU = 2


def take(h, known, order=0, migratetype=MIGRATE_MOVABLE) -> pb.RmqueueReply:
    request = pb.RmqueueRequest(
        cpu=IDLE_CPU,
        order=order,
        migratetype=migratetype,
        count=1,
        transfer_id=transfer_id(),
        incarnation=h.incarnation(IDLE_CPU),
        pageblock_version=known,
    )
    reply = h.coord.Rmqueue(request, timeout=RPC_TIMEOUT)
    assert reply.watermark_ok and len(reply.pfn) == 1
    return reply


def block_type(blocks: pb.Pageblocks, pfn: int) -> int:
    return blocks.migratetype[(pfn >> pageblock_order) - (blocks.first_pfn >> pageblock_order)]


def test_zone_replies_carry_the_pageblock_types_a_node_lacks_and_a_steal_renews_them(make_cluster):
    h = make_cluster(HK_HK_IDLE)
    zone = h.state().zone
    first = take(h, known=0)
    blocks = first.pageblocks
    assert first.HasField("pageblocks") and blocks.version >> 32 == h.state().coordinator_epoch
    nr_blocks = len(blocks.migratetype)
    assert blocks.first_pfn == zone.start_pfn and nr_blocks == zone.spanned_pages >> pageblock_order
    # The zone's boot layout (node.mm.zone): an eighth UNMOVABLE, a sixteenth RECLAIMABLE, the rest MOVABLE.
    assert blocks.migratetype[: nr_blocks // 8] == bytes([MIGRATE_UNMOVABLE]) * (nr_blocks // 8)
    assert blocks.migratetype[nr_blocks // 8] == MIGRATE_RECLAIMABLE
    assert blocks.migratetype[-1] == MIGRATE_MOVABLE
    assert block_type(blocks, first.pfn[0]) == MIGRATE_MOVABLE  # a MOVABLE page from a MOVABLE block

    # Whole UNMOVABLE pageblocks until the UNMOVABLE ones run out: the next comes from a block of another
    # type, which it claims whole (steal_suitable_fallback, order >= pageblock_order), and the version
    # changes with it. The housekeeping CPUs may steal too: the loop stops at the first new version.
    taken = [(first.pfn[0], 0, MIGRATE_MOVABLE)]
    known = blocks.version
    for _ in range(nr_blocks):
        reply = take(h, known, order=pageblock_order, migratetype=MIGRATE_UNMOVABLE)
        taken.append((reply.pfn[0], pageblock_order, MIGRATE_UNMOVABLE))
        if reply.HasField("pageblocks"):
            break
        assert block_type(blocks, reply.pfn[0]) == MIGRATE_UNMOVABLE  # no change: still an UNMOVABLE block
    assert reply.HasField("pageblocks"), "no steal in a zone's worth of pageblocks"
    assert reply.pageblocks.version > known
    assert block_type(reply.pageblocks, reply.pfn[0]) == MIGRATE_UNMOVABLE
    assert block_type(blocks, reply.pfn[0]) != MIGRATE_UNMOVABLE  # it was another type's block

    pages = pb.PageList(
        pfn=[p for p, _, _ in taken], order=[o for _, o, _ in taken], migratetype=[m for *_, m in taken]
    )
    request = pb.FreePagesRequest(
        cpu=IDLE_CPU, pages=pages, transfer_id=transfer_id(), incarnation=h.incarnation(IDLE_CPU)
    )
    assert h.coord.FreePages(request, timeout=RPC_TIMEOUT).HasField("pageblocks")  # version 0: sent
    assert_audit_ok(h)


def test_zone_below_high_reaches_the_nodes_and_their_commit_flushes_clear_it(make_cluster):
    """ZONE_BELOW_HIGH on a real coordinator (node.mm.zone.Zone.check_below_high): refills that take the
    zone under its high watermark set it, the zone's replies and state report it, and it clears once
    the pages are back above high and a node's free_unref_page_commit flush (node.zone_client sends
    `commit`) reaches the zone: the test's own free sends none, so the housekeeping CPUs' flushes do."""
    h = make_cluster(HK_HK_IDLE)
    zone = h.state().zone
    taken: list[int] = []
    free = zone.free_pages
    count = 4096
    while free > zone.watermark_high - 64:  # a little under high, still above min (a refill below it is refused)
        want = min(count, free - zone.watermark_high + 64)
        request = pb.RmqueueRequest(
            cpu=IDLE_CPU,
            order=0,
            migratetype=MIGRATE_MOVABLE,
            count=want,
            transfer_id=transfer_id(),
            incarnation=h.incarnation(IDLE_CPU),
        )
        reply = h.coord.Rmqueue(request, timeout=RPC_TIMEOUT)
        if not reply.watermark_ok:  # the housekeeping CPUs' refills took the margin meanwhile: ask for less
            count = max(1, want // 2)
        taken += reply.pfn
        free = reply.free_pages
    wait_until(lambda: h.state().zone.below_high, 30, what="ZONE_BELOW_HIGH set under the high watermark")
    for i in range(0, len(taken), 4096):  # in requests the size of the takes (a message's size is bounded)
        chunk = taken[i : i + 4096]
        pages = pb.PageList(pfn=chunk, order=[0] * len(chunk), migratetype=[MIGRATE_MOVABLE] * len(chunk))
        request = pb.FreePagesRequest(
            cpu=IDLE_CPU, pages=pages, transfer_id=transfer_id(), incarnation=h.incarnation(IDLE_CPU)
        )
        free = h.coord.FreePages(request, timeout=RPC_TIMEOUT).free_pages
    assert free > zone.watermark_high
    wait_until(lambda: not h.state().zone.below_high, 30, what="a node's commit flush clearing ZONE_BELOW_HIGH")
    assert_audit_ok(h)
