"""The virtual-time core (node.sim): events in (time, seq) order, seeded streams by name, the network."""

import bisect
import random

import pytest

from node.sim.clock import EventQueue
from node.sim.net import LOOPBACK_ZONE_RTT_US, Latency, SimNetwork
from node.sim.rng import RngTree


def test_events_run_in_time_order_and_ties_in_the_order_they_were_scheduled():
    """Two events due at one instant run in scheduling order, whatever their callables are."""
    q = EventQueue()
    ran = []
    for name, when in (("c", 2.0), ("a", 1.0), ("b2", 1.5), ("b1", 1.5), ("d", 1.0)):
        q.at(when, ran.append, name)
    q.run(10.0)
    assert ran == ["a", "d", "b2", "b1", "c"]
    assert q.clock() == 10.0


def test_the_clock_moves_to_each_event_and_an_event_in_the_past_is_refused():
    q = EventQueue()
    seen = []
    q.at(0.5, lambda: seen.append(q.clock()))
    q.at(0.25, lambda: q.after(0.5, lambda: seen.append(q.clock())))
    q.run(0.6)
    assert seen == [0.5]  # the event at 0.75 is not due yet
    q.run(1.0)
    assert seen == [0.5, 0.75]
    with pytest.raises(ValueError, match="before now"):
        q.at(0.9, print)


def test_advance_moves_the_clock_only_where_the_event_would_be_the_next_to_run_inside_run():
    """EventQueue.advance: a waiter whose wake-up event would be the next one run() runs goes on at once,
    and the event counts as run; not outside run(), not past its bound, not past or onto a queued event."""
    q = EventQueue()
    assert not q.advance(0.1)  # outside run(): a stepping driver looks at its state after every event
    seen = []

    def waiter() -> None:
        seen.append(("advance to 0.2", q.advance(0.2), q.clock()))
        seen.append(("advance to 0.5, a tie", q.advance(0.5), q.clock()))
        seen.append(("advance to 0.7, past 0.5", q.advance(0.7), q.clock()))

    q.at(0.1, waiter)
    q.at(0.5, seen.append, "event at 0.5")
    q.at(0.5, lambda: seen.append(("advance to 2.0, past the bound", q.advance(2.0), q.clock())))
    q.run(1.0)
    assert seen == [
        ("advance to 0.2", True, 0.2),
        ("advance to 0.5, a tie", False, 0.2),  # the event scheduled first at 0.5 runs first
        ("advance to 0.7, past 0.5", False, 0.2),
        "event at 0.5",
        ("advance to 2.0, past the bound", False, 0.5),
    ]
    assert q.executed == 4  # three events and the one advance stood for
    assert q.clock() == 1.0
    assert not q.advance(1.5)  # run() is over


def _order(seed: int) -> list[tuple[float, str]]:
    """Events scheduled at drawn times, many of them tied, each scheduling more."""
    q = EventQueue()
    rng = RngTree(seed).stream("times")
    out: list[tuple[float, str]] = []

    def event(name: str, depth: int) -> None:
        out.append((q.clock(), name))
        if depth < 3:
            for k in range(3):
                q.after(rng.choice((0.0, 1.0, 2.0)), event, f"{name}.{k}", depth + 1)

    for k in range(4):
        q.at(float(rng.randrange(3)), event, str(k), 0)
    q.run(100.0)
    return out


def test_one_seed_gives_one_event_order_and_another_seed_another():
    assert _order(7) == _order(7)
    assert _order(7) != _order(8)


def test_a_stream_depends_on_its_name_and_the_seed_only():
    """Taking other streams first, or more of them, leaves a stream's draws as they were."""
    alone = RngTree(1).stream("net")
    tree = RngTree(1)
    tree.stream("housekeeping")
    tree.subtree("cpu0").stream("irq")
    crowded = tree.stream("net")
    assert [alone.random() for _ in range(5)] == [crowded.random() for _ in range(5)]
    assert RngTree(2).stream("net").random() != RngTree(1).stream("net").random()
    assert RngTree(1).subtree("cpu0").stream("irq").random() != RngTree(1).subtree("cpu1").stream("irq").random()


def test_a_stream_name_is_handed_out_once():
    """Two components given the same stream would draw the same numbers: the tree refuses."""
    tree = RngTree(1)
    tree.stream("net")
    with pytest.raises(ValueError, match="already taken"):
        tree.stream("net")
    with pytest.raises(ValueError, match="already taken"):
        tree.subtree("net")


def test_latency_follows_its_quantile_table():
    """Inverse transform sampling: the share of draws below each point of the table is its percentile."""
    lat = Latency(LOOPBACK_ZONE_RTT_US)
    rng = random.Random(3)
    xs = sorted(lat.draw(rng) for _ in range(20_000))
    for p, x in LOOPBACK_ZONE_RTT_US[1:-2]:
        below = bisect.bisect_left(xs, x) / len(xs)
        assert abs(below - p / 100) < 0.005, (p, below)
    assert xs[0] >= LOOPBACK_ZONE_RTT_US[0][1] and xs[-1] <= LOOPBACK_ZONE_RTT_US[-1][1]


def test_a_bad_quantile_table_is_refused():
    with pytest.raises(ValueError, match="p0 to p100"):
        Latency(((0.0, 2.0), (50.0, 1.0), (100.0, 3.0)))
    with pytest.raises(ValueError, match="p0 to p100"):
        Latency(((10.0, 1.0), (100.0, 3.0)))


def test_messages_on_one_link_arrive_in_the_order_sent():
    """A message drawn faster than the one before it on its link waits for it; other links do not."""
    q = EventQueue()
    net = SimNetwork(q, random.Random(5), Latency(((0.0, 0.0), (100.0, 10.0))))
    got: list[str] = []
    for k in range(50):
        net.send("a", got.append, f"a{k}")
        net.send(("b", k), got.append, f"b{k}")
    q.run(100.0)
    a = [m for m in got if m.startswith("a")]
    b = [m for m in got if m.startswith("b")]
    assert a == [f"a{k}" for k in range(50)]
    assert b != [f"b{k}" for k in range(50)]  # independent links: drawn latencies reorder them
