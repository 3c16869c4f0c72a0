"""The progress line of long commands: drawn on a terminal, nothing when output is redirected."""

import io
import os
import select
import sys

from coordinator.tools.progress import CLEAR_LINE, Progress, clear_line


def _read_until_quiet(fd: int) -> str:
    """Everything written to the terminal so far (a pty may hand it over in several reads)."""
    out = b""
    while select.select([fd], [], [], 0.2)[0]:
        out += os.read(fd, 4096)
    return out.decode()


def test_progress_draws_one_line_on_a_terminal_and_clears_it_when_done(monkeypatch):
    master, slave = os.openpty()
    with os.fdopen(slave, "w") as tty:
        monkeypatch.setattr(sys, "stdout", tty)
        progress = Progress(3, 60.0, tty)
        progress.update(1, "workqueue", "warmup")
        progress.done()
        progress.update(2, "remote", "warmup")  # after done: nothing more
        tty.flush()
        shown = _read_until_quiet(master)
    os.close(master)
    assert shown.startswith(CLEAR_LINE + "[2/3 workqueue] warmup ") and "remaining ~" in shown
    assert shown.endswith(CLEAR_LINE) and "remote" not in shown
    assert clear_line(io.StringIO()) == ""


def test_progress_is_quiet_when_stdout_is_not_a_terminal(monkeypatch):
    master, slave = os.openpty()
    with os.fdopen(slave, "w") as tty:
        monkeypatch.setattr(sys, "stdout", io.StringIO())  # piped: a script or a CI log
        progress = Progress(2, 10.0, tty)
        progress.update(0, "noise_floor", "starting")
        progress.done()
        tty.flush()
    os.set_blocking(master, False)
    try:
        written = os.read(master, 4096)
    except OSError:  # nothing was written (EAGAIN; EIO once the terminal's other side is closed)
        written = b""
    os.close(master)
    assert written == b""
