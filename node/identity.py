"""Where a node's incarnation comes from in the virtual engine (RegisterRequest's, a new one each time
it registers afresh). The wall node draws it from os.urandom (8 bytes: node.runtime, node.__main__); a
virtual node draws the same width from a seeded stream (node.sim.rng.RngTree), so one seed names every
process alike. The transfer ids' prefix (node.zone_client's os.urandom(4)) has no virtual counterpart
yet: node.virtual.zone numbers a CPU's transfers without one.
"""

from typing import Protocol


class Bits(Protocol):
    """A seeded stream (random.Random from node.sim.rng.RngTree.stream): all a name needs of it."""

    def getrandbits(self, k: int, /) -> int: ...


class SeededIds:
    def __init__(self, rng: Bits) -> None:
        self.rng = rng

    def incarnation(self) -> str:
        """16 hex digits, as os.urandom(8).hex() gives."""
        return f"{self.rng.getrandbits(64):016x}"
