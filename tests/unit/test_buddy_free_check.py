"""BuddyAllocator.check_free_range, on the engine's hot path, reads the free map instead of looking
for a containing free block at every order: it must refuse exactly what the plain loop over every
order refuses, with the same message."""

import contextlib
import random

from node.mm.buddy import BuddyAllocator, PageStateError
from node.mm.constants import MAX_ORDER

START, SPAN = 1 << 20, 1 << 14


def every_order(buddy: BuddyAllocator, pfn: int, order: int) -> str | None:
    """The plain check: at every order k, a free block at pfn rounded down to 2^k that reaches pfn."""
    free = buddy._free
    for k in range(MAX_ORDER):
        head = pfn & ~((1 << k) - 1)
        blk = free.get(head)
        if blk is not None and blk[0] >= k and head + (1 << blk[0]) > pfn:
            return f"double free: pfn {pfn} order {order} overlaps free block pfn {head} order {blk[0]}"
    for p in range(pfn + 1, pfn + (1 << order)):
        if (blk := free.get(p)) is not None:
            return f"double free: pfn {pfn} order {order} contains free block pfn {p} order {blk[0]}"
    return None


def fragmented(rng: random.Random) -> BuddyAllocator:
    buddy = BuddyAllocator(START, SPAN)
    for pfn in range(START, START + SPAN, 1 << (MAX_ORDER - 1)):
        buddy._free_one_page(pfn, MAX_ORDER - 1, 1)
    taken = [p for _ in range(rng.randrange(50, 3000)) if (p := buddy._rmqueue_smallest(rng.choice((0, 0, 1, 3)), 1))]
    rng.shuffle(taken)
    for pfn in taken[: len(taken) // 2]:
        with contextlib.suppress(PageStateError):  # the head of a larger block: some merge, some are refused
            buddy._free_one_page(pfn, 0, 1)
    return buddy


def test_check_free_range_refuses_what_a_look_at_every_order_refuses_with_the_same_message():
    rng = random.Random(3)
    refused = accepted = 0
    for _ in range(30):
        buddy = fragmented(rng)
        for _ in range(1000):
            order = rng.randrange(0, 4)
            pfn = (START + rng.randrange(0, SPAN - 8)) & ~((1 << order) - 1)
            want = every_order(buddy, pfn, order)
            try:
                buddy.check_free_range(pfn, order)
                got = None
            except PageStateError as err:
                got = str(err)
            assert got == want, (pfn, order)
            refused += got is not None
            accepted += got is None
    assert refused > 1000 and accepted > 1000  # both outcomes were exercised
