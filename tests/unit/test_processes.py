"""coordinator.tools.chaos.processes on real processes: a SIGSTOP the nemesis sends has taken effect when
it goes on, so its next step sees the process stopped (sweep seed 4364 under the wall engine)."""

import signal
import subprocess
import sys

from coordinator.tools.chaos.processes import process_state, sigstop


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
