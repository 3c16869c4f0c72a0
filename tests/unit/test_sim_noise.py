"""node.sim.noise: the timer-slack model's quantiles, its determinism per seed, its streams' independence."""

import pytest

from node.sim import noise
from node.sim.net import Latency
from node.sim.noise import BARE_TIMER_LATENESS_US, NO_SLACK, QUIET_TIMER_LATENESS_US, TimerSlack, timer_slack
from node.sim.rng import RngTree

SCALE = 250.0


def _draws(seed: int, name: str = "slack/cpu0", n: int = 20_000, model: str = noise.MODEL) -> list[float]:
    slack = noise.wake_slack(model, RngTree(seed).stream(name), SCALE)
    return [slack.lateness() for _ in range(n)]


def _quantile(sorted_xs: list[float], p: float) -> float:
    return sorted_xs[min(len(sorted_xs) - 1, int(p / 100.0 * len(sorted_xs)))]


@pytest.mark.parametrize(
    "model,measured", [(noise.MODEL, BARE_TIMER_LATENESS_US), (noise.QUIET, QUIET_TIMER_LATENESS_US)]
)
def test_the_draws_follow_the_measured_table_scaled_to_kernel_time(model, measured):
    """Each measured quantile, divided by TIME_SCALE, is where the draws put it (within the sampling
    error of 20,000 draws), and nothing falls outside the table's range: the loaded host's table and
    the quiet host's."""
    xs = sorted(_draws(1, model=model))
    table = dict(measured)
    for p in (10.0, 25.0, 50.0, 75.0, 90.0):
        expected = table[p] * 1e-6 / SCALE
        assert _quantile(xs, p) == pytest.approx(expected, rel=0.05), p
    assert table[0.0] * 1e-6 / SCALE <= xs[0]
    assert xs[-1] <= table[100.0] * 1e-6 / SCALE
    # the tail is the host's: p99 of the draws lies between the table's p90 and p99.9
    assert table[90.0] * 1e-6 / SCALE < _quantile(xs, 99.0) < table[99.9] * 1e-6 / SCALE


def test_a_seed_gives_one_sequence_and_another_seed_another():
    assert _draws(7, n=500) == _draws(7, n=500)
    assert _draws(7, n=500) != _draws(8, n=500)


def test_each_cpu_draws_from_its_own_stream_whatever_the_others_draw():
    """CPU 1's slack is the same whether CPU 0 woke up ten times or a thousand times before it."""
    tree_a, tree_b = RngTree(3), RngTree(3)
    a0, a1 = timer_slack(tree_a.stream("slack/cpu0"), SCALE), timer_slack(tree_a.stream("slack/cpu1"), SCALE)
    b0, b1 = timer_slack(tree_b.stream("slack/cpu0"), SCALE), timer_slack(tree_b.stream("slack/cpu1"), SCALE)
    for _ in range(10):
        a0.lateness()
    for _ in range(1000):
        b0.lateness()
    assert [a1.lateness() for _ in range(100)] == [b1.lateness() for _ in range(100)]
    assert a1.draws == 100 and b0.draws == 1000


def test_another_table_is_an_input_and_the_zero_model_is_always_on_time():
    exact = TimerSlack(RngTree(1).stream("x"), Latency([(0.0, 2e-6), (100.0, 2e-6)]))
    assert {exact.lateness() for _ in range(50)} == {2e-6}
    assert NO_SLACK.lateness() == 0.0


def test_a_time_scale_that_is_not_positive_is_refused():
    with pytest.raises(ValueError, match="time_scale"):
        timer_slack(RngTree(1).stream("x"), 0.0)
