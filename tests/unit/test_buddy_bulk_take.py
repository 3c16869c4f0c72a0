"""BuddyAllocator._rmqueue_smallest_bulk, a refill's pages in one call, takes what as many calls of
__rmqueue_smallest (one page each, expand() splitting the block) take, in the same order, and leaves
every free list as they would: the same blocks, in the same list order. Its shortcut (a split block's
units taken at once, the untaken tail left as its binary decomposition) must not be visible."""

import random

import pytest

from node.mm.buddy import BuddyAllocator
from node.mm.constants import MAX_ORDER, MIGRATE_PCPTYPES

SPAN = 1 << 14


def state(buddy: BuddyAllocator) -> tuple:
    lists = [[list(heads) for heads in by_mt] for by_mt in buddy.free_area]
    return lists, dict(buddy._free), bytes(buddy._free_map), buddy.free_pages


def twins(seed: int) -> tuple[BuddyAllocator, BuddyAllocator, list]:
    """Two equal buddies, fragmented by the same random takes and frees; the blocks still taken."""
    rng = random.Random(seed)
    buddies = (BuddyAllocator(0, SPAN), BuddyAllocator(0, SPAN))
    types = [rng.randrange(MIGRATE_PCPTYPES) for _ in range(SPAN >> (MAX_ORDER - 1))]
    for buddy in buddies:
        for i, mt in enumerate(types):
            buddy._merge_free(i << (MAX_ORDER - 1), MAX_ORDER - 1, mt)
    held: list[tuple[int, int, int]] = []
    for _ in range(200):
        if held and rng.random() < 0.4:
            block = held.pop(rng.randrange(len(held)))
            for buddy in buddies:
                buddy._merge_free(*block)
        else:
            order, mt = rng.choice((0, 0, 1, 3)), rng.randrange(MIGRATE_PCPTYPES)
            pfns = [p for p in (buddies[0]._rmqueue_smallest(order, mt),) if p is not None]
            assert [buddies[1]._rmqueue_smallest(order, mt)] == (pfns or [None])
            held += [(p, order, mt) for p in pfns]
    return buddies[0], buddies[1], held


@pytest.mark.parametrize("seed", range(40))
def test_a_bulk_take_is_as_many_single_takes(seed):
    rng = random.Random(1000 + seed)
    bulk, single, _ = twins(seed)
    for _ in range(60):
        order, mt, count = rng.choice((0, 0, 0, 1, 2, 3, 9)), rng.randrange(MIGRATE_PCPTYPES), rng.randrange(1, 200)
        pages: list[int] = []
        taken = bulk._rmqueue_smallest_bulk(order, mt, count, pages)
        one_by_one = []
        for _ in range(count):
            pfn = single._rmqueue_smallest(order, mt)
            if pfn is None:
                break
            one_by_one.append(pfn)
        assert (taken, pages) == (len(one_by_one), one_by_one)
        assert state(bulk) == state(single)
