"""The host-noise model: what the wall engine's host noise stood for, seeded, so the noise floor is an input.

On the wall engine every timed wake-up of a CPU thread comes late by whatever the host adds (the
scheduler, the GIL, the other processes on 2 shared cores); `pcpsim bench` measures that floor with
a bare timer thread (node.wake_probe) beside the latency task. The virtual engine has no host, so
a wake-up is exactly on time unless work or IRQs on its CPU delay it. This module puts the slack
back as a model: each timed wake-up of a virtual CPU is late by a draw from a lateness
distribution, from one seeded stream per CPU. IRQ arrivals stay node.tasks.IrqSource's Poisson
process, already seeded; this model is only the timer slack.

The shape: BARE_TIMER_LATENESS_US, the bare timer probe's lateness on the development machine,
measured with the bench's own path: coordinator.tools.bench.noise.bench_noise(quick=True, run_dir)
(the figure "latency task wake p99 (no drains) vs bare timer"; a housekeeping and an
isolated-preemptible node, the probe in the isolated node's process, period 20 ms), every sample of
the probe's file (1,601 wake-ups over 32 s), 2026-12-02 05:36 UTC, load average 2.7 on 2 cores:
p50 170 us, p90 377 us, p99 3.66 ms, p99.9 10.6 ms, max 12.1 ms of wall time. The bench's window
of the same run (1,501 wake-ups) gave p99 3.01 ms. Like the network's table (node.sim.net) it is
wall time on a loaded host; a driver scales it to kernel time (`timer_slack`: wall / TIME_SCALE),
which makes the median 0.68 us and p99 14.7 us of kernel time at TIME_SCALE 250.

Against a real NOHZ_FULL CPU: cyclictest on 30 isolated threads of a Xeon Gold 6338N, 6.12.78-rt,
nohz_full and isolcpus, 2 hours, reports min 2.0-2.2 us, avg 2.1-2.3 us, max 6.8-11.5 us of wake-up
latency (LKML, Ionut Nechita, "NO_HZ_FULL vs NO_HZ_IDLE: ~300ns cyclictest latency regression from
context tracking overhead", 2026-03-26). The scaled table's body is below that floor (a model
CPU's wake-up costs nothing of itself) and its tail above that maximum (the host's tail, which the
wall engine's figures carry): a run that wants the real machine's floor passes that table instead
(`timer_slack(rng, time_scale, table)`); this one stands for what the wall engine measured.

QUIET_TIMER_LATENESS_US is the same probe on the same machine when nothing else ran: the same call
(`bench_noise(quick=True, run_dir)`), every sample of the isolated node's probe file (1,602 wake-ups),
2026-12-03 18:06 UTC, load average 0.5 falling to 0.4: p50 147 us, p99 566 us, max 1.62 ms of wall
time, so 0.59, 2.26 and 6.50 us of kernel time. That floor is the one the wall engine's figures show
on a quiet machine (README and docs/benchmarks.md: p99 0.42-0.46 ms), and its kernel-time tail lies
near the real isolated CPU's maximum above.

Which model a run uses is its choice by name (`NOISE`, `wake_slack`): QUIET, the quiet host's table,
is what `pcpsim compare --engine virtual` runs by default (`COMPARE_DEFAULT`, `--noise`), so its noise
floor has a value; MODEL, the loaded host's; NONE (NO_SLACK) leaves only the model's own delays, as
the unit tests' golden digests and a run that wants the strategies' effect alone do.

Why QUIET is compare's default (since 2026-12-08; MODEL was until then). The noise floor stands for
an isolated CPU's own noise, and two measurements say what that is. A real NOHZ_FULL CPU (above):
max 6.8-11.5 us over two hours; QUIET's p99 is 2.26 us and its max 6.50, where MODEL's p99 alone
(14.7 us) is above that maximum. And the wall engine, in the conditions the README and CI run it (a
quiet machine): its floor was 3.2 us in `make compare` on 2026-12-07 and on 2026-12-04, 1.7-1.8 us in
the README's run of 2026-11-26; QUIET gives 2.1-3.1 us over seeds 1-20, MODEL 14-21 us. So MODEL
stood for a loaded host, which is the wall engine's weakness the virtual engine exists to remove.
docs/engine.md ("The noise floor by default") has the figures and what the choice does to compare's
claims.
"""

from collections.abc import Sequence
from typing import Protocol

from node.sim.net import Latency
from node.sim.rng import Uniform

# Percentile -> lateness in microseconds of wall time (see the module docstring).
BARE_TIMER_LATENESS_US: tuple[tuple[float, float], ...] = (
    (0.0, 91.9),  # the earliest wake-up of the sample
    (1.0, 110.6),
    (10.0, 142.0),
    (25.0, 155.4),
    (50.0, 170.2),
    (75.0, 205.6),
    (90.0, 376.7),
    (99.0, 3663.2),
    (99.9, 10581.5),
    (100.0, 12065.1),  # the latest of 1,601: the sample says nothing beyond it
)

# The same, on the quiet host (see the module docstring).
QUIET_TIMER_LATENESS_US: tuple[tuple[float, float], ...] = (
    (0.0, 57.8),
    (1.0, 102.3),
    (10.0, 119.3),
    (25.0, 129.3),
    (50.0, 146.8),
    (75.0, 172.8),
    (90.0, 200.7),
    (99.0, 565.5),
    (99.9, 1189.4),
    (100.0, 1624.3),  # the latest of 1,602
)


class WakeSlack(Protocol):
    """What a virtual CPU asks at each timed wake-up: how late, in virtual seconds, it comes."""

    def lateness(self) -> float: ...


class NoSlack:
    """Every wake-up on time (unit tests; runs that want only the model's own delays)."""

    def lateness(self) -> float:
        return 0.0


NO_SLACK = NoSlack()


class TimerSlack:
    """Lateness drawn from an empirical distribution, one draw per wake-up, from one seeded stream."""

    def __init__(self, rng: Uniform, distribution: Latency) -> None:
        self.rng = rng
        self.distribution = distribution
        self.draws = 0

    def lateness(self) -> float:
        self.draws += 1
        return self.distribution.draw(self.rng)


def timer_slack(
    rng: Uniform, time_scale: float, table: Sequence[tuple[float, float]] = BARE_TIMER_LATENESS_US
) -> TimerSlack:
    """A CPU's slack from a table of microseconds of wall time, in kernel seconds (wall / time_scale).
    Give each CPU its own stream (RngTree.stream(f"slack/cpu{n}")), so one CPU's wake-ups never shift
    another's draws."""
    if time_scale <= 0:
        raise ValueError(f"time_scale must be positive, got {time_scale!r}")
    return TimerSlack(rng, Latency.scaled(table, 1e-6 / time_scale))


MODEL = "model"  # the bare timer probe's table on a loaded host (BARE_TIMER_LATENESS_US)
QUIET = "quiet"  # the same probe on a quiet host (QUIET_TIMER_LATENESS_US)
NONE = "none"  # NO_SLACK
NOISE = (MODEL, QUIET, NONE)
COMPARE_DEFAULT = QUIET  # a virtual compare's model when none is named (see the module docstring)


def wake_slack(noise: str, rng: Uniform, time_scale: float) -> WakeSlack:
    """The slack of the noise model named `noise` (one of NOISE) for one CPU, drawing from `rng`."""
    if noise == MODEL:
        return timer_slack(rng, time_scale)
    if noise == QUIET:
        return timer_slack(rng, time_scale, QUIET_TIMER_LATENESS_US)
    if noise == NONE:
        return NO_SLACK
    raise ValueError(f"unknown noise model {noise!r}: one of {', '.join(NOISE)}")
