"""One seed, many independent random streams, each derived from the seed and its own name.

Every random draw of a virtual run comes from a stream of one RngTree: the stream named `name` is a
random.Random seeded with SHA-256(seed, name), so it is the same whichever other streams exist, in
whatever order they were made (adding a stream never shifts another's draws, as a split of one
shared generator would), and the same on every machine (hashlib, not hash(), which is salted per
process for strings). A name can be taken once: two components drawing the same sequence would be
correlated without anyone noticing. This is the only module of the virtual engine that imports
random (tests/unit/test_layering.py), so no draw can be unseeded.
"""

import hashlib
import random
from typing import Protocol


class Uniform(Protocol):
    """A seeded stream (RngTree.stream): all a draw by inverse transform needs of it."""

    def random(self) -> float: ...


class RngTree:
    def __init__(self, seed: int | str) -> None:
        self.seed = seed
        self._taken: set[str] = set()

    def stream(self, name: str) -> random.Random:
        """The stream called `name`; each name once per tree."""
        self._claim(name)
        digest = hashlib.sha256(f"{self.seed!r}\0{name}".encode()).digest()
        return random.Random(int.from_bytes(digest, "big"))

    def subtree(self, name: str) -> "RngTree":
        """A tree of its own under `name` (one per CPU, say), independent of this tree's streams."""
        self._claim(name)  # so no stream can share it
        return RngTree(f"{self.seed!r}/{name}")

    def _claim(self, name: str) -> None:
        if name in self._taken:
            raise ValueError(f"random stream {name!r} was already taken from seed {self.seed!r}")
        self._taken.add(name)
