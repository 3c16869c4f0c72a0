"""That this machine evaluates doubles as doubles, which a seed's same bits on every machine rest on.

node.sim.ieee builds on +, -, *, / being rounded once, to a double. The x87 unit of 32-bit x86
rounds each result to its own 64-bit significand first, and to a double only when it is stored, so
some results come out one ulp off (double rounding): a virtual run of seed 7 under Debian's i386
Python gave other bytes than on x86_64 and aarch64, times differing in their last digits from line
5,494 of its event log on (docs/engine.md, "Determinism"). Linux starts a process with the x87's precision
control at 64 bits; set to 53, it rounds to a double (its exponent range stays wider, so results
below 2^-1022, which no virtual run has, could still round twice). No C library call sets it,
save fesetenv with the whole environment, so on 32-bit x86 this reads the environment with
fegetenv, sets the precision bits of its control word (its first 16 bits, glibc's fenv_t on i386)
and writes it back. Anywhere else a failing check is an error: the run could not be replayed.
"""

import platform
import struct

_X86 = {"i386", "i486", "i586", "i686", "x86", "x86_64", "amd64"}  # a 32-bit process on a 64-bit kernel says x86_64
_PRECISION_CONTROL = 0x0300  # x87 control word bits 8-9: 00 single, 10 double, 11 extended
_DOUBLE_PRECISION = 0x0200
_checked = False


def rounds_once(a: float = 1e16, b: float = 2.9999999999999996) -> bool:
    """1e16 + 2.9999999999999996 is 10000000000000002 rounded once to a double, 10000000000000004 when
    rounded to 64 bits first (to ...03, a tie, then to the even double). Arguments, not constants:
    the compiler would fold a constant expression, on the same unit but out of sight."""
    return a + b == 1.0000000000000002e16


def ensure_double_evaluation() -> None:
    """Return if doubles round once here, after setting the x87 to double precision on 32-bit x86;
    RuntimeError if they still do not."""
    global _checked
    if _checked:
        return
    if not rounds_once() and struct.calcsize("P") == 4 and platform.machine().lower() in _X86:
        _x87_double_precision()
    if not rounds_once():
        raise RuntimeError(
            "this machine rounds floating-point results twice (extended precision), so a seed would not "
            "give the bytes it gives elsewhere; the virtual engine needs IEEE doubles (node.sim.fpu)"
        )
    _checked = True


def _x87_double_precision() -> None:
    import ctypes  # only on 32-bit x86

    libm = ctypes.CDLL("libm.so.6")
    env = ctypes.create_string_buffer(64)  # fenv_t is 28 bytes on i386
    if libm.fegetenv(env) != 0:
        return
    (control,) = struct.unpack_from("<H", env.raw, 0)
    struct.pack_into("<H", env, 0, (control & ~_PRECISION_CONTROL) | _DOUBLE_PRECISION)
    libm.fesetenv(env)
