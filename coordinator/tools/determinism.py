"""`--check-determinism`: run the same seeded virtual-time run twice and name the first divergent event.

madsim's check runs each seed twice and stops at the first event that differs; this does the same
after the fact, on what each run leaves: its results JSON and its event log (one event per line).
A run is a callable giving both texts; the check compares the event logs line by line first (the
earliest divergence explains the results' divergence), then the results.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    """What one run leaves: its results (JSON text) and its event log (one event per line)."""

    results: str
    events: str

    def digests(self) -> tuple[str, str]:
        return _sha256(self.results), _sha256(self.events)


@dataclass(frozen=True)
class Report:
    first: Outcome
    second: Outcome
    divergence: str | None  # None: byte-identical

    @property
    def identical(self) -> bool:
        return self.divergence is None

    def describe(self) -> str:
        results, events = self.first.digests()
        lines = [
            f"results sha256 {results}",
            f"event log sha256 {events} ({self.first.events.count(chr(10))} events)",
        ]
        if self.divergence is None:
            lines.append("determinism: two runs gave byte-identical results and event logs")
        else:
            lines.append(f"determinism: the runs diverge: {self.divergence}")
        return "\n".join(lines)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def first_divergence(a: str, b: str, what: str) -> str | None:
    """The first line where texts a and b differ, as 'what line N: <a> != <b>'; None if identical."""
    if a == b:
        return None
    left, right = a.splitlines(), b.splitlines()
    for n, (x, y) in enumerate(zip(left, right, strict=False), start=1):
        if x != y:
            return f"{what} line {n}: first run {x!r}, second run {y!r}"
    n = min(len(left), len(right)) + 1
    longer, which = (left, "first") if len(left) > len(right) else (right, "second")
    if len(left) == len(right):  # same lines, different line endings
        return f"{what}: same lines, different bytes (line endings)"
    return f"{what} line {n}: only the {which} run has it: {longer[n - 1]!r}"


def check(run: Callable[[], Outcome]) -> Report:
    """Run twice; the report names the first divergent event, else the first divergent results line."""
    return compare(run(), run())


def compare(first: Outcome, second: Outcome) -> Report:
    """Two runs' outcomes: the first divergent event, else the first divergent results line."""
    divergence = first_divergence(first.events, second.events, "event log") or first_divergence(
        first.results, second.results, "results"
    )
    return Report(first, second, divergence)
