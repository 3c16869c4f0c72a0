"""node.sim.ieee's log and exp, node.sim.rng's Stream that draws with them, and node.sim.fpu's check.

Their point is the same bits on every machine; tests/machines/run.sh runs a whole seed on three. Here:
they are close to the C library's values, their bits are the ones committed (so a change to them is
seen, as it moves every virtual run), a stream's draws use no C library function, and a machine that
rounds twice is refused."""

import math
import random
import struct

import pytest

from node.sim import fpu, ieee
from node.sim.rng import MachineDependentDraw, RngTree, Stream


def ulps(a: float, b: float) -> int:
    return abs(struct.unpack("<q", struct.pack("<d", a))[0] - struct.unpack("<q", struct.pack("<d", b))[0])


def test_log_is_within_two_ulps_of_the_c_librarys_from_subnormals_to_the_largest_double():
    rng = random.Random(3)
    xs = [rng.random() for _ in range(20_000)]
    xs += [math.ldexp(rng.random() + 0.5, rng.randrange(-1070, 1020)) for _ in range(20_000)]
    xs += [5e-324, 2.2250738585072014e-308, 0.5, 1.0, 2.0, math.e, 1.7976931348623157e308]
    assert max(ulps(ieee.log(x), math.log(x)) for x in xs if x > 0) <= 2
    assert ieee.log(1.0) == 0.0 and ieee.log(math.inf) == math.inf


def test_exp_is_within_one_ulp_of_the_c_librarys_over_a_doubles_range():
    rng = random.Random(4)
    xs = [rng.uniform(-708.0, 709.7) for _ in range(20_000)] + [rng.uniform(-5.0, 5.0) for _ in range(20_000)]
    assert max(ulps(ieee.exp(x), math.exp(x)) for x in xs) <= 1
    assert ieee.exp(0.0) == 1.0 and ieee.exp(-800.0) == 0.0 and math.isnan(ieee.exp(math.nan))


# Their bits, committed: 0.01's log and -20's exp are one ulp from glibc's (-0x1.26bb1bbb55515p+2 and
# 0x1.1b48655f37267p-29 on x86_64), which shows these are not the C library's.
@pytest.mark.parametrize(
    ("f", "x", "bits"),
    [
        (ieee.log, 0.3, "-0x1.34378fcbda721p+0"),
        (ieee.log, 0.01, "-0x1.26bb1bbb55516p+2"),
        (ieee.log, 1e-300, "-0x1.5963447f87fb5p+9"),
        (ieee.exp, 0.3, "0x1.599058c8c1a96p+0"),
        (ieee.exp, -20.0, "0x1.1b48655f37266p-29"),
    ],
)
def test_log_and_exp_give_the_committed_bits(f, x, bits):
    assert f(x).hex() == bits


@pytest.mark.parametrize(
    ("f", "x", "error"),
    [(ieee.log, 0.0, ValueError), (ieee.log, -1.0, ValueError), (ieee.log, math.nan, ValueError),
     (ieee.exp, 710.0, OverflowError)],
)  # fmt: skip
def test_out_of_domain_arguments_raise_as_maths_do(f, x, error):
    with pytest.raises(error):
        f(x)


def test_a_streams_expovariate_takes_one_uniform_draw_through_ieee_log():
    a, b = Stream(5), Stream(5)
    draws = [a.expovariate(4.0) for _ in range(20_000)]
    assert draws[:100] == [-ieee.log(1.0 - b.random()) / 4.0 for _ in range(100)]
    assert abs(sum(draws) / len(draws) - 0.25) < 0.01  # an exponential of rate 4: mean 1/4


@pytest.mark.parametrize("draw", ["gauss", "normalvariate", "lognormvariate", "vonmisesvariate", "gammavariate",
                                  "betavariate", "paretovariate", "weibullvariate"])  # fmt: skip
def test_a_stream_refuses_the_draws_that_need_the_c_librarys_functions(draw):
    with pytest.raises(MachineDependentDraw, match="C library"):
        getattr(RngTree(1).stream("s"), draw)(1.0, 1.0)


def test_doubles_round_once_here():
    assert fpu.rounds_once()
    assert not fpu.rounds_once(1e16, 4.0)  # the check can fail: this sum is ...04


def test_a_machine_that_rounds_twice_is_refused(monkeypatch):
    """The x87 fix is run by tests/machines/run.sh on 32-bit x86; here, a machine that is not 32-bit x86
    and fails the check (faked) gets the error, not a run whose bytes no other machine gives."""
    monkeypatch.setattr(fpu, "_checked", False)
    monkeypatch.setattr(fpu, "rounds_once", lambda: False)
    with pytest.raises(RuntimeError, match="rounds floating-point results twice"):
        RngTree(7)


def test_a_stream_draws_what_random_random_draws_but_expovariate():
    """The generators that became Streams (the wall node's, compare's trigger plan, the drain schedule,
    the wall fault rules) draw what they drew: only expovariate is computed otherwise."""
    a, b = Stream("drains:7"), random.Random("drains:7")
    assert [a.random() for _ in range(50)] == [b.random() for _ in range(50)]
    assert [a.uniform(0.5, 1.5) for _ in range(50)] == [b.uniform(0.5, 1.5) for _ in range(50)]
    assert [a.randrange(1000) for _ in range(50)] == [b.randrange(1000) for _ in range(50)]
    assert a.choices("abc", (1, 2, 3), k=50) == b.choices("abc", (1, 2, 3), k=50)
    assert a.sample(range(100), 10) == b.sample(range(100), 10)
    assert a.getstate() == b.getstate()
