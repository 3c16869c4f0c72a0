"""node.identity: one rule names a node, from the bits its driver gives (seeded, or os.urandom's on the wall)."""

import random

from node import wall_ids
from node.identity import Ids
from node.wall_ids import WALL_IDS, Urandom


def test_a_seed_names_a_node_alike_every_run():
    a, b = Ids(random.Random(7)), Ids(random.Random(7))
    names = [a.incarnation(), a.transfer_prefix(), a.incarnation()]
    assert names == [b.incarnation(), b.transfer_prefix(), b.incarnation()]
    assert [len(n) for n in names] == [16, 8, 16] and all(int(n, 16) >= 0 for n in names)
    assert names[0] != names[2]  # a new incarnation each time


def test_the_wall_names_are_os_urandoms_hex_as_on_the_wire(monkeypatch):
    """The wire format is unchanged: an incarnation is os.urandom(8).hex(), a prefix os.urandom(4).hex()."""
    pool = iter([bytes(range(1, 9)), b"\xde\xad\xbe\xef", b"\xff\xff"])
    monkeypatch.setattr(wall_ids.os, "urandom", lambda n: next(pool)[:n])
    assert WALL_IDS.incarnation() == "0102030405060708"
    assert WALL_IDS.transfer_prefix() == "deadbeef"
    assert Urandom().getrandbits(12) == 0xFFF  # two bytes drawn, the four surplus bits dropped
