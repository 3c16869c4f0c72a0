"""Make the usual leaks of a deterministic run loud: every time.* clock and sleep, and the random
module's shared generator, raise while a test runs the virtual engine (docs/engine.md, Determinism)."""

import random
import time

CLOCKS = ("monotonic", "monotonic_ns", "time", "time_ns", "perf_counter", "perf_counter_ns", "sleep")
DRAWS = ("random", "uniform", "choice", "choices", "randrange", "randint", "expovariate", "shuffle")


def forbid_wall_clock_and_shared_random(monkeypatch) -> None:
    def leak(*args, **kwargs):
        raise AssertionError("the virtual engine read the wall clock or drew an unseeded number")

    for name in CLOCKS:
        monkeypatch.setattr(time, name, leak)
    for name in DRAWS:
        monkeypatch.setattr(random, name, leak)
