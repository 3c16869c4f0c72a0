"""A bare periodic timer: the floor the latency task's wake lateness is measured against.

The same kind of loop as the CPU thread's (node.cpu): a thread that waits on a
threading.Condition with a timeout until an absolute deadline, then records how late
it woke. It does nothing else, so in the node process it sees exactly the machine's and
the process's noise (the scheduler, the GIL, the gRPC threads) and none of the CPU
loop's; `pcpsim bench` compares the two (`python -m node --wake-probe DIR`). Its
deadlines sit LEAD_S before the latency task's, like cyclictest's aligned threads: a
burst of load on the machine delays both alike, so the two percentiles differ by what
the CPU loop adds and not by which of them a burst happened to hit; and the probe has
normally gone back to sleep before the task wakes, so they do not contend for the GIL.
"""

import argparse
import json
import os
import threading
import time

LEAD_S = 250e-6  # past a bare timer's usual lateness (~0.15 ms here) plus its ~20 us of work


class WakeProbe(threading.Thread):
    def __init__(self, period: float, first_deadline: float, clock=time.monotonic):
        super().__init__(name="wake-probe", daemon=True)
        self.period = period
        self.clock = clock
        self._deadline = first_deadline
        self.samples: list[tuple[float, float]] = []  # (programmed wake, lateness), seconds
        self._cv = threading.Condition()
        self._stopping = False

    @classmethod
    def beside(cls, task, period: float, clock=time.monotonic) -> "WakeProbe":
        """A probe LEAD_S ahead of `task` (anything with `next_wake`, on the same period), or free-running."""
        now = clock()
        first = task.next_wake - LEAD_S if task is not None else now + period
        while first <= now:
            first += period
        return cls(period, first, clock)

    @property
    def lateness(self) -> list[float]:
        return [late for _, late in self.samples]

    def run(self) -> None:
        clock, cv = self.clock, self._cv
        while not self._stopping:
            deadline = self._deadline
            with cv:
                while (now := clock()) < deadline and not self._stopping:
                    cv.wait(min(deadline - now, 1.0))
            if self._stopping:
                break
            self.samples.append((deadline, clock() - deadline))
            deadline += self.period
            while deadline <= clock():  # a period overrun entirely is skipped, as the task skips it
                deadline += self.period
            self._deadline = deadline

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify()
        self.join(5.0)

    def write(self, path: str) -> None:
        """The samples as JSON ({"period_s", "samples": [[programmed, lateness], ...]}), written atomically."""
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump({"period_s": self.period, "samples": self.samples}, f)
        os.replace(tmp, path)


def read(path: str, start: float, end: float) -> list[float]:
    """Lateness of the samples a probe wrote whose programmed wake lies in [start, end]."""
    with open(path) as f:
        doc = json.load(f)
    return [late for at, late in doc["samples"] if start <= at <= end]


def directory(text: str) -> str:
    """argparse type: an existing, writable directory."""
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"not a directory: {text!r}")
    if not os.access(text, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"directory {text!r} is not writable")
    return text
