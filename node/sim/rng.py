"""One seed, many independent random streams, each derived from the seed and its own name.

Every random draw of a virtual run comes from a stream of one RngTree: the stream named `name` is a
random.Random seeded with SHA-256(seed, name), so it is the same whichever other streams exist, in
whatever order they were made (adding a stream never shifts another's draws, as a split of one
shared generator would), and the same on every machine (hashlib, not hash(), which is salted per
process for strings). A name can be taken once: two components drawing the same sequence would be
correlated without anyone noticing. This is the only module of the virtual engine that imports
random (tests/unit/test_layering.py), so no draw can be unseeded.

A stream is a `Stream`: random.Random with expovariate computed by node.sim.ieee's log instead of the
C library's, and the draws that need other C library functions (gauss, lognormvariate, ...)
refused, so that no draw of a stream depends on the machine's libm. Making a tree first makes sure
that this machine evaluates doubles as doubles (node.sim.fpu).
"""

import hashlib
import random
from typing import NoReturn, Protocol

from node.sim import fpu, ieee


class Uniform(Protocol):
    """A seeded stream (RngTree.stream): all a draw by inverse transform needs of it."""

    def random(self) -> float: ...


class MachineDependentDraw(RuntimeError):
    """A draw that would go through the C library's log, exp, sin or cos: refused, not offered."""


class Stream(random.Random):
    """random.Random whose draws are the same bits on every machine: its C core (random, getrandbits,
    and from them randrange, choice, shuffle, uniform) is IEEE arithmetic on integers already."""

    def expovariate(self, lambd: float) -> float:
        # random.Random.expovariate (Python 3.11) with node.sim.ieee's log: the same single draw.
        return -ieee.log(1.0 - self.random()) / lambd

    def _libm(self, *args: object, **kwargs: object) -> NoReturn:
        raise MachineDependentDraw(
            "this draw goes through the C library's log, exp, sin or cos, whose last bits differ between "
            "machines: a seeded stream offers random, uniform, randrange, choice, expovariate (node.sim.rng)"
        )

    gauss = normalvariate = lognormvariate = vonmisesvariate = _libm
    gammavariate = betavariate = paretovariate = weibullvariate = _libm


class RngTree:
    def __init__(self, seed: int | str) -> None:
        fpu.ensure_double_evaluation()
        self.seed = seed
        self._taken: set[str] = set()

    def stream(self, name: str) -> Stream:
        """The stream called `name`; each name once per tree."""
        self._claim(name)
        digest = hashlib.sha256(f"{self.seed!r}\0{name}".encode()).digest()
        return Stream(int.from_bytes(digest, "big"))

    def subtree(self, name: str) -> "RngTree":
        """A tree of its own under `name` (one per CPU, say), independent of this tree's streams."""
        self._claim(name)  # so no stream can share it
        return RngTree(f"{self.seed!r}/{name}")

    def _claim(self, name: str) -> None:
        if name in self._taken:
            raise ValueError(f"random stream {name!r} was already taken from seed {self.seed!r}")
        self._taken.add(name)
