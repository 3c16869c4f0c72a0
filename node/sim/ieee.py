"""log and exp from IEEE 754 binary64's basic operations alone, so a seed gives the same bits everywhere.

IEEE 754 requires +, -, *, / to be correctly rounded, so an expression of them gives the same double on
every machine that evaluates doubles as doubles. Nothing requires it of the C library's log and exp:
glibc's are accurate to about half an ulp but not correctly rounded, and its x86_64 build picks
between two versions by whether the CPU has FMA; musl, macOS and Windows have their own. A seeded
draw through math.log (random.Random.expovariate, say) can therefore differ in its last bit between
two machines, and a virtual run's clock with it (tests/unit/test_ieee.py; docs/engine.md,
"Determinism"). These two are a few ulp from the true values, which the simulator does not need,
and the same on every such machine, which it does. `fpu.ensure_double_evaluation` deals with the
machines that do not evaluate doubles as doubles (32-bit x86's x87 unit).

How: frexp and ldexp are exact, and so is the reduction below (Sterbenz: m - 1 for m in [0.5, 2]).
- log(x) = e ln2 + log(m), x = m 2^e with m in [sqrt(1/2), sqrt(2)); log(m) = 2 atanh(s) with
  s = (m - 1) / (m + 1), |s| <= 0.172, summed as its odd series to s^25 (the next term is below 2^-60).
- exp(x) = 2^k exp(r), k the integer nearest x / ln2 and r = x - k ln2 in [-0.35, 0.35] (ln2 split in
  two so that k ln2's high part is exact), exp(r) as its Taylor series to r^17 / 17!.
"""

import math

_LN2_HI = 6.93147180369123816490e-01  # ln 2's leading 32 bits: k * _LN2_HI is exact for |k| < 2^21
_LN2_LO = 1.90821492927058770002e-10  # ln 2 - _LN2_HI
_INV_LN2 = 1.44269504088896338700e00
_SQRT_HALF = 0.7071067811865476
_ATANH_TERMS = tuple(1.0 / n for n in range(25, 2, -2))  # 1/25, 1/23, ..., 1/3: Horner's order
_EXP_TERMS = tuple(1.0 / math.factorial(n) for n in range(17, 1, -1))  # 1/17!, ..., 1/2!
_EXP_MAX = 709.782712893384  # above it exp overflows a double
_EXP_MIN = -745.1332191019412  # below it exp is 0


def log(x: float) -> float:
    """The natural logarithm of x > 0 (ValueError otherwise, as math.log)."""
    if not x > 0.0:
        raise ValueError(f"log of {x!r}: needs a number above 0")
    if x == math.inf:
        return x
    m, e = math.frexp(x)  # x = m * 2**e, 0.5 <= m < 1; exact
    if m < _SQRT_HALF:
        m *= 2.0  # exact
        e -= 1
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    series = 0.0
    for c in _ATANH_TERMS:
        series = series * s2 + c
    log_m = 2.0 * (s + s * s2 * series)
    return e * _LN2_HI + (e * _LN2_LO + log_m)


def exp(x: float) -> float:
    """e to the x (OverflowError above ~709.78, as math.exp)."""
    if x != x:
        return x
    if x > _EXP_MAX:
        raise OverflowError(f"exp of {x!r}: out of a double's range")
    if x < _EXP_MIN:
        return 0.0
    k = math.floor(x * _INV_LN2 + 0.5)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    series = 0.0
    for c in _EXP_TERMS:
        series = series * r + c
    return math.ldexp(1.0 + r + r * r * series, k)
