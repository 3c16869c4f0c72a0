"""A latency task's deadline misses by cause: each missed (or skipped) period goes to the cause that stole
the most of it, `none` when nothing did (node.tasks.LatencyTask.step)."""

import types

from node.cpu import NoiseLog
from node.tasks import NO_CAUSE, LatencyTask
from tests.clock import FakeClock


class Alloc:
    """An allocator whose every allocation queues `wait` seconds for zone->lock, on the fake clock."""

    def __init__(self, clock, wait: float):
        self.clock, self.wait = clock, wait
        self.lock_contention_s = self.zone_lock_wait_s = 0.0

    def alloc_pages(self, order, migratetype):
        self.clock.now += self.wait
        self.zone_lock_wait_s += self.wait
        return 1

    def free_pages(self, pfn):
        pass


def run_one(busy: float, wait: float, irq: float = 0.0) -> LatencyTask:
    """One period of an RT task (period 1 ms, deadline 0.8 ms) that allocates one page, with `irq`
    seconds of an IRQ logged in its busy phase."""
    clock = FakeClock()
    alloc = Alloc(clock, wait)
    task = LatencyTask("rt", period=1e-3, busy=busy, deadline=8e-4, allocs=1, alloc=alloc, clock=clock, rt=True)
    noise = NoiseLog()

    def user(seconds):
        if irq:
            noise.add(clock.now, clock.now + irq, "irq")
            clock.now += irq
        clock.now += seconds

    clock.now = task.next_wake
    task.step(types.SimpleNamespace(clock=clock, noise=noise, user=user, preempt_point=lambda: None))
    return task


def test_a_period_that_fits_misses_nothing():
    task = run_one(busy=6e-4, wait=1e-4)
    assert (task.totals.deadline_misses, task.totals.misses_by_cause) == (0, {})


def test_a_miss_goes_to_the_cause_that_stole_the_most():
    task = run_one(busy=6e-4, wait=2.5e-4, irq=1e-5)  # 860 us: zone->lock 250 us, irq 10 us
    assert task.totals.misses_by_cause == {"zone_lock": 1}
    task = run_one(busy=6e-4, wait=1e-5, irq=2.5e-4)
    assert task.totals.misses_by_cause == {"irq": 1}
    assert task.window.misses_by_cause == {"irq": 1} and task.window.deadline_misses == 1


def test_a_miss_nothing_stole_from_is_the_tasks_own_and_skipped_periods_count_with_it():
    task = run_one(busy=2.1e-3, wait=0.0)  # its own work overruns two periods and misses their deadlines
    assert task.totals.deadline_misses == 3
    assert task.totals.misses_by_cause == {NO_CAUSE: 3}
