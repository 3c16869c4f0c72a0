"""The CPU's scheduling rule (node.sched), on its own: no thread, no clock, every case exact."""

from node import sched


class Src:
    def __init__(self, name, next_wake, rt=False):
        self.name, self.next_wake, self.rt = name, next_wake, rt
        self.rebased = []

    def rebase(self, now):
        self.rebased.append(now)
        self.next_wake = max(self.next_wake, now + 1.0)

    def step(self, cpu):
        raise AssertionError("the rule never runs a source")


def pick(rq, now, sources, work=False, paused=False, membership=False):
    return rq.pick(now, sources, work, paused, membership)


def test_a_due_rt_source_runs_before_queued_work_and_queued_work_before_a_due_task():
    rt, task = Src("rt", 1.0, rt=True), Src("task", 0.5)
    rq = sched.RunQueue()
    assert pick(rq, 2.0, [task, rt], work=True) == sched.Decision(sched.SOURCE, rt)
    assert pick(rq, 0.9, [task, rt], work=True) == sched.Decision(sched.WORK)
    assert pick(rq, 0.9, [task, rt]) == sched.Decision(sched.SOURCE, task)


def test_the_source_due_first_runs_first_and_ties_go_to_list_order():
    a, b, c = Src("a", 0.3), Src("b", 0.1), Src("c", 0.1)
    rq = sched.RunQueue()
    assert pick(rq, 1.0, [a, b, c]).source is b
    assert pick(rq, 1.0, [a, c, b]).source is c
    x, y = Src("x", 0.5, rt=True), Src("y", 0.1, rt=True)
    assert pick(rq, 1.0, [x, y]).source is x  # RT sources: the first due in list order


def test_nothing_due_idles_until_the_earliest_wake_or_without_bound_with_no_source():
    rq = sched.RunQueue()
    assert pick(rq, 0.0, [Src("a", 3.0), Src("b", 2.0)]) == sched.Decision(sched.IDLE, until=2.0)
    assert pick(rq, 0.0, []) == sched.Decision(sched.IDLE, until=None)


def test_a_paused_cpu_runs_no_source_but_runs_queued_work_unless_membership_holds_it():
    rt = Src("rt", 0.0, rt=True)
    rq = sched.RunQueue()
    assert pick(rq, 1.0, [rt], paused=True) == sched.Decision(sched.PARK)
    assert pick(rq, 1.0, [rt], work=True, paused=True) == sched.Decision(sched.WORK)
    assert pick(rq, 1.0, [rt], work=True, paused=True, membership=True) == sched.Decision(sched.PARK)


def test_after_a_pause_every_source_restarts_its_period_from_now_once():
    a, b = Src("a", 0.5), Src("b", 9.0)
    rq = sched.RunQueue()
    pick(rq, 1.0, [a, b], paused=True)
    assert pick(rq, 5.0, [a, b]) == sched.Decision(sched.IDLE, until=6.0)
    assert a.rebased == [5.0] and b.rebased == [5.0]
    pick(rq, 5.5, [a, b])
    assert a.rebased == [5.0]  # only on the first decision after the pause
