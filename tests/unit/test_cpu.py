"""The CPU thread's scheduling rules: who waits for whom on one simulated CPU.

These run the real CPU thread with short wall-clock durations; they assert the order
of events and which cause time is attributed to, never how long anything took.
"""

import threading
import time

from node.cpu import MEMBERSHIP, OPERATOR, Cpu, NoiseLog
from node.tasks import LatencyTask


class NoAlloc:
    """A task that allocates nothing (allocs=0) never calls these; present for the interface."""

    lock_contention_s = 0.0
    zone_lock_wait_s = 0.0


def wait_until(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.002)


def make_task(cpu, rt, busy=0.060, period=0.5):
    task = LatencyTask(
        "rt" if rt else "preemptible",
        period=period,
        busy=busy,
        deadline=period,
        allocs=0,
        alloc=NoAlloc(),
        clock=cpu.clock,
        rt=rt,
        slice_s=0.002,
    )
    task.next_wake = cpu.clock()  # due at once
    cpu.sources = [task]
    return task


class BusySource:
    """A source due at once that records when its one busy phase ran."""

    def __init__(self, cpu, rt, busy):
        self.rt = rt
        self.busy = busy
        self.next_wake = cpu.clock()
        self.ran = None
        self.started = threading.Event()

    def rebase(self, now):
        pass

    def step(self, cpu):
        start = cpu.clock()
        self.started.set()
        cpu.occupy(self.busy)
        self.ran = (start, cpu.clock())
        self.next_wake = start + 3600.0


def test_rt_busy_phase_makes_queued_work_wait():
    """Work queued while an RT task is in its busy phase starts only after that phase ends."""
    cpu = Cpu(0)
    src = BusySource(cpu, rt=True, busy=0.080)
    cpu.sources = [src]
    cpu.start()
    try:
        assert src.started.wait(5)
        item = cpu.queue_work("workqueue", lambda: 7)
        wait_until(lambda: item.done)
        assert item.result == 7
        assert item.started_at >= src.ran[1]
        assert item.queued_at < src.ran[1]
        assert cpu.drain_work_items == 1 and cpu.drain_wait_max_s > 0.0
    finally:
        cpu.stop()


def test_due_rt_task_runs_before_queued_work():
    """When an RT task and a work item are both ready, the RT task runs first."""
    cpu = Cpu(0)
    src = BusySource(cpu, rt=True, busy=0.010)
    cpu.sources = [src]
    item = cpu.queue_work("workqueue", lambda: None)  # queued before the CPU starts
    cpu.start()
    try:
        wait_until(lambda: item.done)
        assert item.started_at >= src.ran[1]
    finally:
        cpu.stop()


def test_preemptible_task_lets_work_run_and_is_charged_for_it():
    """A preemptible task yields at its next preemption point; the work's time is charged
    to the task as stolen by `workqueue`."""
    cpu = Cpu(0)
    task = make_task(cpu, rt=False, busy=0.200)
    cpu.start()
    try:
        wait_until(lambda: task.wake_latency)
        item = cpu.queue_work("workqueue", lambda: cpu.occupy(0.010))
        wait_until(lambda: task.window.runs == 1)
        assert item.done
        assert item.queued_at <= item.started_at < item.finished_at <= time.monotonic()  # each stamped, in order
        assert task.window.stolen_s.get("workqueue", 0.0) > 0.0
        assert task.window.noise_events["workqueue"] == 1
    finally:
        cpu.stop()


def test_work_before_wake_delays_the_wake():
    """A work item running when a task is due delays its wake-up: the lateness is recorded."""
    cpu = Cpu(0)
    task = make_task(cpu, rt=False, busy=0.001)
    task.next_wake = cpu.clock() + 10.0  # not yet
    cpu.start()
    try:
        started = threading.Event()

        def long_work():
            started.set()
            cpu.occupy(0.050)

        cpu.queue_work("workqueue", long_work)
        started.wait(5)
        task.next_wake = cpu.clock() + 0.005  # due while the work still runs
        cpu.notify()
        wait_until(lambda: task.wake_latency)
        assert task.wake_latency[0] > 0.005  # woke only once the 50 ms item finished
    finally:
        cpu.stop()


def test_wait_for_runs_work_queued_on_this_cpu():
    """A task sleeping in wait_for (direct reclaim waiting for a drain) lets the kworker run,
    so a workqueue drain that includes its own CPU cannot deadlock."""
    cpu = Cpu(0)
    cpu.sources = []
    done = threading.Event()
    ran = []

    def item():
        ran.append(threading.current_thread().name)
        done.set()

    cpu.queue_work("workqueue", item)
    assert cpu.wait_for(done, timeout=5.0)
    assert ran == [threading.current_thread().name]


def test_paused_cpu_runs_queued_work_but_no_task():
    """While paused, tasks do not run, yet queued work does (drains reach paused CPUs)."""
    cpu = Cpu(0)
    task = make_task(cpu, rt=False, busy=0.001, period=0.005)
    cpu.start()
    try:
        assert cpu.set_paused(True)
        runs = task.window.runs
        item = cpu.queue_work("workqueue", lambda: 1)
        wait_until(lambda: item.done)
        assert task.window.runs == runs
        assert cpu.set_paused(False)
        wait_until(lambda: task.window.runs > runs)
    finally:
        cpu.stop()


def test_a_cpu_held_paused_by_the_operator_and_its_agent_runs_only_when_both_let_go():
    """An audit (OPERATOR) that pauses and resumes a CPU the node's agent parked to rejoin
    (MEMBERSHIP) must not set it running under the agent, nor the agent under the audit."""
    cpu = Cpu(0)
    task = make_task(cpu, rt=False, busy=0.001, period=0.005)
    cpu.start(paused=True, by=MEMBERSHIP)
    try:
        assert cpu.set_paused(True) and cpu.parked  # the audit pauses it
        assert cpu.held_paused_by(OPERATOR) and cpu.held_paused_by(MEMBERSHIP)
        assert cpu.set_paused(False, by=MEMBERSHIP)  # the agent lets go mid-audit...
        runs = task.window.runs
        assert cpu.parked and cpu.paused  # ...and the CPU stays parked for the audit
        assert cpu.set_paused(False)  # the audit resumes it
        wait_until(lambda: task.window.runs > runs)
        assert cpu.set_paused(True, by=MEMBERSHIP) and cpu.set_paused(True)
        assert cpu.set_paused(False)  # and the other way round
        runs = task.window.runs
        assert cpu.parked and not cpu.held_paused_by(OPERATOR)
        assert cpu.set_paused(False, by=MEMBERSHIP)
        wait_until(lambda: task.window.runs > runs)
    finally:
        cpu.stop()


def test_noise_log_overlap_clips_to_window():
    """Only the part of a noise interval inside the task's window counts as stolen."""
    log = NoiseLog()
    log.add(0.0, 1.0, "irq")
    log.add(2.0, 3.0, "workqueue")
    assert sorted(log.overlap(0.5, 2.5)) == [("irq", 0.5), ("workqueue", 0.5)]
    assert log.overlap(1.0, 2.0) == []


class SilentHog:
    """Occupies the CPU when due without logging any noise (like the machine stealing time)."""

    rt = False

    def __init__(self, cpu, at, seconds):
        self.next_wake = at
        self.seconds = seconds

    def rebase(self, now):
        pass

    def step(self, cpu):
        cpu.occupy(self.seconds)
        self.next_wake = cpu.clock() + 3600.0


def test_unexplained_wake_lateness_is_noise_of_cause_other():
    """Lateness that no logged activity explains is attributed to `other`, above the threshold."""
    cpu = Cpu(0)
    task = make_task(cpu, rt=False, busy=0.001, period=0.5)
    task.noise_threshold_s = 0.005
    now = cpu.clock()
    task.next_wake = now + 0.010
    cpu.sources = [SilentHog(cpu, now, 0.050), task]
    cpu.start()
    try:
        wait_until(lambda: task.window.runs == 1)
        assert task.wake_latency[0] > 0.030
        assert task.window.stolen_s["other"] > 0.030 and task.window.noise_events["other"] == 1
        assert "workqueue" not in task.window.stolen_s
    finally:
        cpu.stop()


def test_a_pause_that_times_out_is_undone():
    """A CPU busy past the pause's timeout is not left held: the failed pause changes nothing, so
    the CPU runs on once its busy phase ends, with nobody needing to resume it. A hold that was
    there before the failed call stays."""
    cpu = Cpu(0)
    source = BusySource(cpu, rt=True, busy=0.3)
    cpu.sources = [source]
    cpu.start()
    try:
        assert source.started.wait(5.0)
        assert not cpu.set_paused(True, timeout=0.01)
        assert not cpu.held_paused_by(OPERATOR) and not cpu.paused
        work = cpu.queue_work("workqueue", lambda: 1)
        wait_until(lambda: work.done)  # the CPU thread went on after its busy phase
        assert not cpu.parked
        # Busy again; a first pause waits long, a second gives up: the first's hold stays.
        source.started.clear()
        source.next_wake = cpu.clock()
        assert source.started.wait(5.0)
        first = threading.Thread(target=lambda: cpu.set_paused(True, timeout=5.0))
        first.start()
        wait_until(lambda: cpu.held_paused_by(OPERATOR))
        assert not cpu.set_paused(True, timeout=0.01)
        assert cpu.held_paused_by(OPERATOR)
        first.join()
        assert cpu.parked
        assert cpu.set_paused(False)
    finally:
        cpu.stop()


def test_a_cpu_parked_to_rejoin_runs_no_queued_work_until_it_is_online_again():
    """Held by MEMBERSHIP (the node rejoining and reporting its pages), queued work waits: a
    drain's work item freeing pages then would race the report. Under OPERATOR alone it runs."""
    cpu = Cpu(0)
    make_task(cpu, rt=False, busy=0.001, period=0.005)
    cpu.start()
    try:
        assert cpu.set_paused(True, by=MEMBERSHIP) and cpu.parked
        item = cpu.queue_work("workqueue", lambda: 1)
        assert cpu.set_paused(True)  # an audit pauses it too: still parked, the work still waits
        ran = threading.Event()
        item.add_done_callback(lambda _item: ran.set())
        assert not ran.wait(0.2) and cpu.parked
        assert cpu.set_paused(False, by=MEMBERSHIP)  # online again; the audit's pause lets work run
        wait_until(lambda: item.done)
        assert cpu.set_paused(False)
    finally:
        cpu.stop()


def test_a_slow_cpus_stretch_ends_soon_after_its_heal_not_at_its_slowed_length():
    """The wall driver of the virtual test's rule (tests/unit/test_virtual.py): 0.3 s of work at
    factor 100 is a 30 s stretch; healed after 0.05 s, the rest (under 0.3 s) runs at full speed."""
    cpu = Cpu(0)
    cpu.slowdown = 100.0
    done, slowed = threading.Event(), threading.Event()
    sleep_slowed = cpu._sleep_slowed
    cpu._sleep_slowed = lambda seconds: (slowed.set(), sleep_slowed(seconds))[1]  # the stretch has begun
    worker = threading.Thread(target=lambda: (cpu.occupy(0.3), done.set()), daemon=True)
    worker.start()
    assert slowed.wait(10.0), "the slowed stretch never began"
    assert not done.is_set()
    cpu.slowdown = 1.0
    assert done.wait(15.0), "the stretch ran on at the slowed factor after the heal"
    assert cpu.busy_s < 15.0
