"""The wall node's names (node.identity's rule) with os.urandom as the source of their bits.

Always os.urandom, whatever --seed says: a restarted process keeps its seed but must never reuse an
incarnation or a transfer-id prefix (node.identity).
"""

import os

from node.identity import Ids


class Urandom:
    """node.identity.Bits from the kernel's random pool (getrandom(2))."""

    def getrandbits(self, k: int, /) -> int:
        # Whole bytes, big-endian as bytes.hex() reads them, then the surplus low bits dropped: for k a
        # multiple of 8 the name is exactly os.urandom(k // 8).hex().
        return int.from_bytes(os.urandom((k + 7) // 8)) >> (-k % 8)


WALL_IDS = Ids(Urandom())  # stateless: every wall driver may draw from it
