"""A node's names: its incarnation (RegisterRequest's, a new one each time it registers afresh) and the
prefix of its zone transfer ids (node.zone_client's: a restarted node's ids never collide with the last
one's). One rule draws both from a stream of bits its driver gives:
- the wall node gives os.urandom's (node.wall_ids), always: its --seed (default 1) is the same across
  restarts, and a restarted process must never reuse an incarnation or a prefix;
- the virtual engine gives a seeded stream (node.sim.rng.RngTree), so one seed names every process alike.
The widths are the wire's: the hex of os.urandom(8) and os.urandom(4). node.virtual.zone numbers a CPU's
transfers without a prefix so far, so only the incarnation is drawn there.
"""

from typing import Protocol


class Bits(Protocol):
    """A stream of random bits: random.Random (node.sim.rng.RngTree.stream) or node.wall_ids.Urandom."""

    def getrandbits(self, k: int, /) -> int: ...


class Ids:
    def __init__(self, rng: Bits) -> None:
        self.rng = rng

    def incarnation(self) -> str:
        """16 hex digits, as os.urandom(8).hex() gives."""
        return f"{self.rng.getrandbits(64):016x}"

    def transfer_prefix(self) -> str:
        """8 hex digits, as os.urandom(4).hex() gives."""
        return f"{self.rng.getrandbits(32):08x}"
