"""A bounded log of recent timed events on one CPU: (start, end, kind).

What a per-CPU timeline of a drain window is drawn from (`pcpsim report --html`): the CPU's
work items and IRQs (node.cpu.NoiseLog), the latency task's activations (node.tasks) and the
buddy fallbacks of its allocator (node.alloc). Each log is a deque with a fixed length, appended
on paths that already read the clock, so keeping it costs one tuple per event and the oldest
events fall off: a window older than the last `keep` events comes back partial.
"""

import collections

DEFAULT_KEEP = 4096  # at a 20 ms period, over 80 s of a latency task's activations


class EventLog:
    def __init__(self, keep: int = DEFAULT_KEEP):
        self._log: collections.deque[tuple[float, float, str]] = collections.deque(maxlen=keep)

    def add(self, start: float, end: float, kind: str) -> None:
        self._log.append((start, end, kind))

    def between(self, start: float, end: float) -> list[tuple[float, float, str]]:
        """Every logged event that overlaps [start, end], oldest first. Events are appended in
        order of their end, so the scan stops at the first that ended before `start`. Safe from
        another thread than the one appending: deque.copy() runs in C, without a thread switch (a
        deque iterated while it is appended to raises).
        """
        out = []
        for event in reversed(self._log.copy()):
            if event[1] < start:
                break
            if event[0] <= end:
                out.append(event)
        out.reverse()
        return out
