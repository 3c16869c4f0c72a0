"""The simulated network: each message is delivered after a latency drawn from a seeded distribution.

The distribution is an empirical one: a table of quantiles, sampled by inverse transform with
linear interpolation between them (a uniform draw, then arithmetic: no math.log or exp, whose last
bit may differ between C libraries, so a seed gives the same latencies on every machine). Messages
on one link (a gRPC stream: HTTP/2 over one TCP connection) arrive in the order they were sent: a
message drawn faster than the one before it on its link waits for it.

Where the shape comes from: LOOPBACK_ZONE_RTT_US, round trips on an open ZoneStream between a node
and the coordinator on loopback, measured here with pcpsim's own bench helper
(coordinator.tools.bench.streams.rtt_zone; 3,000 round trips after 50 to warm up, a 1-CPU idle
cluster, 2026-12-02 04:38 UTC, load average 3.2 on the 2-core development machine). Its tail is the
loaded host's scheduling, which is why the table keeps it: it is what the wall engine's messages
see. The virtual engine runs in kernel time, so a driver scales it (`Latency.scaled`): one way is
half a round trip, and a wall-time figure stands for 1/TIME_SCALE of it in kernel time
(node.shared.timebase), which makes the median one-way latency 0.5 us of kernel time, an IPI's order.
"""

import bisect
from collections.abc import Callable, Sequence
from typing import Protocol

from node.sim.clock import EventQueue

# Percentile -> round trip in microseconds (see the module docstring).
LOOPBACK_ZONE_RTT_US: tuple[tuple[float, float], ...] = (
    (0.0, 180.0),  # below the lowest measured percentile (p1 189.3): the fastest round trip seen is near it
    (1.0, 189.3),
    (10.0, 213.2),
    (25.0, 223.1),
    (50.0, 252.8),
    (75.0, 320.0),
    (90.0, 418.5),
    (99.0, 1034.5),
    (99.9, 4547.1),
    (100.0, 4547.1),  # the sample's tail is cut at p99.9: 3,000 round trips say nothing beyond it
)


class Uniform(Protocol):
    """A seeded stream (node.sim.rng.RngTree.stream): all a latency draw needs of it."""

    def random(self) -> float: ...


class Latency:
    """An empirical distribution: (percentile, seconds) points, percentiles 0 to 100, both increasing."""

    def __init__(self, points: Sequence[tuple[float, float]]) -> None:
        ps = [p for p, _ in points]
        xs = [x for _, x in points]
        if ps[0] != 0.0 or ps[-1] != 100.0 or ps != sorted(ps) or xs != sorted(xs) or xs[0] < 0:
            raise ValueError(f"latency quantiles must run from p0 to p100, non-decreasing and >= 0: {points}")
        self._ps = [p / 100.0 for p in ps]
        self._xs = xs

    @classmethod
    def scaled(cls, points: Sequence[tuple[float, float]], factor: float) -> "Latency":
        """The same shape with every value times `factor` (e.g. microseconds of wall round trip to
        seconds of kernel time one way: 1e-6 / 2 / TIME_SCALE)."""
        return cls([(p, x * factor) for p, x in points])

    def draw(self, rng: Uniform) -> float:
        u = rng.random()
        i = bisect.bisect_right(self._ps, u)  # 1 <= i <= len - 1: u < 1 = the last point
        p0, p1 = self._ps[i - 1], self._ps[i]
        x0, x1 = self._xs[i - 1], self._xs[i]
        return x0 if p1 == p0 else x0 + (x1 - x0) * (u - p0) / (p1 - p0)


class SimNetwork:
    def __init__(self, queue: EventQueue, rng: Uniform, latency: Latency) -> None:
        self.queue = queue
        self.rng = rng
        self.latency = latency
        self._last: dict[object, float] = {}  # link -> arrival time of its last message
        self.sent = 0

    def arrival(self, link: object) -> float:
        """When a message sent now over `link` arrives: after a drawn latency, and never before the
        link's previous message."""
        arrival = max(self.queue.clock.now + self.latency.draw(self.rng), self._last.get(link, 0.0))
        self._last[link] = arrival
        self.sent += 1
        return arrival

    def send(self, link: object, deliver: Callable[..., object], *args: object) -> float:
        """Run `deliver(*args)` when a message sent now over `link` arrives; returns the arrival time."""
        arrival = self.arrival(link)
        self.queue.at(arrival, deliver, *args)
        return arrival
