"""coordinator.tools.chaos.processes on real processes: a SIGSTOP the nemesis sends has taken effect when
it goes on, so its next step sees the process stopped (sweep seed 4364 under the wall engine); the time
the host's run queue holds a process back, which the wall runner's settling wait adds."""

import os
import signal
import subprocess
import sys
import time

import pytest

from coordinator.tools.chaos.processes import HeldBack, ThreadSched, process_state, sigstop, thread_scheds


def test_sigstop_returns_once_the_process_is_stopped_and_sigcont_runs_it_at_once():
    """A busy child (it never sleeps, so a signal is acted on only when the scheduler next runs it) is
    stopped by the time sigstop returns; SIGCONT wakes it before kill(2) returns. Twenty rounds."""
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        for _ in range(20):
            sigstop(child)
            assert process_state(child.pid) == "T"
            child.send_signal(signal.SIGCONT)
            assert process_state(child.pid) != "T"
    finally:
        child.kill()
        child.wait()


def test_sigstop_of_a_process_that_is_gone_returns_at_once():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    sigstop(child)  # Popen.send_signal does nothing for a reaped child
    assert process_state(child.pid) == ""


def test_three_busy_processes_on_one_core_each_wait_in_its_run_queue_and_a_sleeping_one_does_not():
    """Three busy children pinned to one core take turns on it, so each waits in its run queue about two
    thirds of the time; a child that sleeps waits for nothing. A process that is gone reads 0."""
    core = min(os.sched_getaffinity(0))
    busy = [
        subprocess.Popen([sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{core}}})\nwhile True: pass"])
        for _ in range(3)
    ]
    sleeping = subprocess.Popen(
        [sys.executable, "-c", "import time; print(flush=True); time.sleep(60)"], stdout=subprocess.PIPE
    )
    try:
        sleeping.stdout.readline()  # its start, which runs, is over
        held = HeldBack()
        for p in [*busy, sleeping]:
            held.since_first_look(p.pid)
        deadline = time.monotonic() + 30.0
        while min(held.since_first_look(p.pid) for p in busy) < 0.2:  # 0.3 s of the three sharing the core
            assert time.monotonic() < deadline, "the busy children never waited in the run queue"
            time.sleep(0.05)
        assert held.since_first_look(sleeping.pid) < 0.05
    finally:
        for p in [*busy, sleeping]:
            p.kill()
            p.wait()
        sleeping.stdout.close()
    assert thread_scheds(sleeping.pid) == {}


def test_held_back_counts_from_its_first_look_takes_the_longest_waiting_thread_and_a_wait_not_yet_ended():
    """A thread's run_delay grows only when it next runs: while a runnable thread's CPU time stands
    still, the time between two looks is its wait. A thread started since the first look counts whole."""
    R = True
    looks = iter(
        [
            (0.0, {1: ThreadSched(1.0, 5.0, R)}),
            (0.5, {1: ThreadSched(1.0, 5.0, R)}),  # runnable, not run: waited 0.5 s
            (1.0, {1: ThreadSched(1.0, 5.0, R), 2: ThreadSched(0.1, 0.2, False)}),
            (1.5, {1: ThreadSched(1.1, 6.2, R)}),  # it ran: its run_delay says 1.2 s
            (2.0, {1: ThreadSched(1.2, 6.2, R)}),  # it ran again, waited no more
        ]
    )
    look: list = []

    def clock():
        look[:] = next(looks)
        return look[0]

    held = HeldBack(lambda pid: look[1], clock=clock)
    assert [held.since_first_look(7) for _ in range(5)] == pytest.approx([0.0, 0.5, 1.0, 1.2, 1.2])
