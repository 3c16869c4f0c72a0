"""Virtual time: a clock only the event queue moves, and the queue, ordered by (time, seq).

An event is a callable and its arguments, due at a virtual instant. `seq` counts events as they
are scheduled, so two events due at one instant run in the order they were scheduled: the order
never depends on the host (thread timing, hash seeds, object ids), only on what ran before. This is
SimPy's rule (simpy/core.py orders its heap by (time, priority, id), id a counter); there is no
priority here because nothing needs one yet.

Fast-forward (`advance`): a fiber about to wait until an instant before which no event is due, inside
a `run` that would reach it, would be resumed by the very next event. It skips the round through the
queue and the two fiber switches: the clock moves, the event counts as run, and the fiber goes on.
Nothing else runs in between in either case, so the order of everything is the queue's.

Time is in seconds of kernel time (docs/engine.md: no TIME_SCALE in the virtual engine), a float
like every clock in pcpsim, so the rule modules take this clock where the wall driver passes
time.monotonic.
"""

import math
from collections.abc import Callable
from heapq import heappop as _heappop
from heapq import heappush as _heappush


class VirtualClock:
    """Now, in virtual seconds: a callable like time.monotonic, read by the rules; set only by EventQueue."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class EventQueue:
    def __init__(self, clock: VirtualClock | None = None) -> None:
        self.clock = clock or VirtualClock()
        self._heap: list[tuple[float, int, Callable[..., object], tuple[object, ...]]] = []
        self._seq = 0
        self.executed = 0  # events run so far (the engine's events-per-second figure counts these)
        self._bound = -math.inf  # the `until` of the run() under way: no fast-forward past it, none outside one

    def __len__(self) -> int:
        return len(self._heap)

    def at(self, when: float, fn: Callable[..., object], *args: object) -> int:
        """Run fn(*args) at virtual time `when` (not before now). Returns the event's seq."""
        if when < self.clock.now:
            name = getattr(fn, "__qualname__", type(fn).__name__)  # not its repr: an address differs run to run
            raise ValueError(f"event {name} scheduled at {when!r}, before now ({self.clock.now!r})")
        seq = self._seq
        self._seq = seq + 1
        _heappush(self._heap, (when, seq, fn, args))
        return seq

    def after(self, delay: float, fn: Callable[..., object], *args: object) -> int:
        return self.at(self.clock.now + delay, fn, *args)

    def advance(self, when: float) -> bool:
        """Whether an event at `when` (not before now), scheduled now, would be the next to run inside
        the run() under way; if so, move the clock to `when` as running it would, counting it as run.
        A caller that waits until `when` and gets True goes on at once: it is that event (see above).
        Outside run() (a driver stepping, which looks at its state after every event) always False."""
        heap = self._heap
        if when > self._bound or (heap and heap[0][0] <= when):  # a tie runs the earlier-scheduled first
            return False
        self._seq += 1
        self.executed += 1
        self.clock.now = when
        return True

    def next_time(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def step(self) -> None:
        """Move the clock to the earliest event and run it."""
        when, _, fn, args = _heappop(self._heap)
        self.clock.now = when
        self.executed += 1
        fn(*args)

    def run(self, until: float) -> None:
        """Run every event due at or before `until`, then leave the clock at `until`."""
        # step() inlined, with its lookups bound once: this loop is the engine's innermost (bench figure 7).
        heap, clock = self._heap, self.clock
        self._bound = until
        try:
            while heap and heap[0][0] <= until:
                when, _, fn, args = _heappop(heap)
                clock.now = when
                self.executed += 1
                fn(*args)
        finally:
            self._bound = -math.inf
        if clock.now < until:
            clock.now = until
