"""The history of a chaos run: one JSON object per line, appended as things happen.

Each entry has `t` (seconds since the run started, monotonic), `process` (who acted:
"workload", "nemesis", "final"), `type` and `f` (what), in Jepsen's vocabulary:
- type "invoke" then one of "ok", "fail" or "info" (outcome unknown) for an operation f;
- type "fault" with "phase": "start" | "heal" for the nemesis;
- type "final" for what was observed after healing (audit, grant records, task metrics).
The checker (coordinator.tools.chaos.checker) reads nothing else.
"""

import json
import threading
import time

from coordinator.tools.chaos import entry_shape


class History:
    def __init__(self, path: str, clock=time.monotonic):
        self.path = path
        self.clock = clock
        self.t0 = clock()
        self._lock = threading.Lock()
        # Open for the history's life (close() closes it); a run directory reused starts afresh.
        self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115

    def start_clock(self) -> None:
        """t = 0 from now on (the workload's start; scenario times are relative to it)."""
        self.t0 = self.clock()

    def now(self) -> float:
        return self.clock() - self.t0

    def add(self, process: str, type_: str, f: str, **value) -> dict:
        entry = {"t": round(self.now(), 6), "process": process, "type": type_, "f": f, **value}
        line = json.dumps(entry, sort_keys=True)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()
        return entry

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read_lines(path: str) -> list:
    """Every line of a JSON-lines file, parsed; a torn last line (the writer was killed) is skipped."""
    entries = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 2:
                raise ValueError(f"{path}:{i + 1}: not a JSON history entry") from None
    return entries


def read(path: str) -> list[dict]:
    """Every entry of a history file, each checked to hold what the checker and the timeline read (a
    wrong one is a ValueError naming the file and line: `chaos check` must not mistake it for a verdict);
    an empty history, or one whose first run description is not the scenario's, is refused too."""
    entries = read_lines(path)
    if not entries:
        raise ValueError(f"{path}: no entries (the run wrote nothing)")
    for line, e in _numbered(path, entries):
        try:
            entry_shape.check(e)
        except entry_shape.Bad as err:
            raise ValueError(f"{path}:{line}: {err}") from None
    meta = next((e for e in entries if e["type"] == "meta"), None)
    if meta is not None and meta["f"] != "scenario":  # `chaos check` reads its bound and lease from it
        raise ValueError(f"{path}: the first meta entry is {meta['f']!r}, not the run's scenario")
    return entries


def _numbered(path: str, entries: list):
    """(line number, entry): read_lines skipped blank lines, so they are counted again here."""
    with open(path, encoding="utf-8") as f:
        numbers = [i + 1 for i, line in enumerate(f.read().split("\n")) if line.strip()]
    return zip(numbers, entries, strict=False)  # a torn last line has a number and no entry
