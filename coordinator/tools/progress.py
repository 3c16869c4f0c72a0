"""Progress of a long command (compare, chaos run, bench): step, elapsed and remaining time on
one line of the terminal, rewritten in place every second.

Quiet unless both stdout and the stream it writes to (stderr) are terminals: piped or
redirected output is a script's or a CI log's, which a line rewritten with carriage returns
would only litter. Lines a command prints meanwhile start with CLEAR_LINE, so they overwrite
the progress line instead of running on after it; the next tick draws it again below them.
"""

import sys
import threading
import time

CLEAR_LINE = "\r\x1b[K"
TICK_S = 1.0


def clear_line(stream) -> str:
    """CLEAR_LINE if `stream` is a terminal (where a progress line may be showing), else ""."""
    return CLEAR_LINE if stream.isatty() else ""


class Progress:
    def __init__(self, steps: int, estimate_s: float, stream=sys.stderr):
        """`steps`: how many phases or runs; `estimate_s`: how long all of them should take."""
        self.stream = stream
        self.enabled = stream.isatty() and sys.stdout.isatty()
        self.steps = steps
        self.estimate_s = estimate_s
        self.t0 = time.monotonic()
        self._state = (0, "", "")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        if self.enabled:
            threading.Thread(target=self._tick, name="progress", daemon=True).start()

    def update(self, index: int, name: str, step: str) -> None:
        """Now in step `step` of phase or run number `index` (from 0), called `name`."""
        self._state = (index, name, step)
        self._draw()

    def _tick(self) -> None:
        while not self._stop.wait(TICK_S):
            self._draw()

    def _draw(self) -> None:
        if not self.enabled:
            return
        index, name, step = self._state
        elapsed = time.monotonic() - self.t0
        remaining = max(0.0, self.estimate_s - elapsed)
        line = f"[{index + 1}/{self.steps} {name}] {step:<10} elapsed {elapsed:5.0f}s  remaining ~{remaining:4.0f}s"
        with self._lock:
            # Checked under the lock: a tick racing done() must not draw after its clearing.
            if not self._stop.is_set():
                self.stream.write(CLEAR_LINE + line)
                self.stream.flush()

    def done(self) -> None:
        """Stop drawing and leave the terminal on a fresh line."""
        with self._lock:
            self._stop.set()
            if self.enabled:
                self.stream.write(CLEAR_LINE)
                self.stream.flush()
