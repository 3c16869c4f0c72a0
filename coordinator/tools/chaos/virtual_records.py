"""What one virtual chaos run records, in memory, as a wall run's directory holds it: the history
(history.jsonl), one transfer log per process (transfers-*.jsonl), and the finished `Run` with its verdict and
event log, which writes that directory (`pcpsim chaos check` reads it as it reads a wall run's)."""

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from coordinator.tools.chaos import checker, timeline, transfers
from coordinator.tools.determinism import Outcome


class History:
    """The chaos history (coordinator.tools.chaos.history's entries) in memory, stamped with the virtual
    instant in scenario seconds. Each entry is kept as the JSON line a wall run writes and as that line
    read back, so the checker sees what `pcpsim chaos check` would read from the file."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.lines: list[str] = []
        self.entries: list[dict] = []

    def now(self) -> float:
        return self.clock()

    def add(self, process: str, type_: str, f: str, **value: Any) -> dict:
        line = json.dumps(
            {"t": round(self.clock(), 6), "process": process, "type": type_, "f": f, **value}, sort_keys=True
        )
        self.lines.append(line)
        entry: dict = json.loads(line)
        self.entries.append(entry)
        return entry


class TransferLogs:
    """The run's transfer logs in memory (node.shared.transfer_log's lines), one per process as a wall
    run keeps one file per process, on the history's clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.files: dict[str, list[dict]] = {}

    def log(self, name: str, **fixed: Any) -> "TransferSink":
        return TransferSink(self, self.files.setdefault(name, []), fixed)

    def events(self, origin: float) -> list[dict]:
        """As coordinator.tools.chaos.transfers.load reads a run directory: files by name, then by time,
        each `t` less `origin` (the history's meta clock's monotonic_t0). (Each line's values are floats,
        ints, strings and lists of them: what JSON gives back unchanged.)"""
        out = [
            e
            for name in sorted(self.files)
            for e in transfers.mark_allocs([{**line, "t": line["t"] - origin} for line in self.files[name]])
        ]
        out.sort(key=lambda e: e["t"])
        return out


class TransferSink:
    """One process's transfer log (node.shared.transfer_log.TransferLog's write, fixed fields, clock)."""

    def __init__(self, logs: TransferLogs, lines: list[dict], fixed: dict) -> None:
        self.clock = logs.clock
        self.lines = lines
        self.fixed = fixed

    def write(self, ev: str, t: Any = None, **fields: Any) -> None:
        self.lines.append({"t": self.clock() if t is None else t, "ev": ev, **self.fixed, **fields})


@dataclass
class Run:
    """One virtual chaos run: its verdict and everything the checker read."""

    name: str  # <scenario>-<strategy>, the wall run directory's name
    verdict: checker.Verdict
    history: list[str]  # history.jsonl's lines
    transfers: dict[str, list[dict]]  # transfer log file name -> its lines
    events: str  # the event log: the coordinator's and agents' steps, the nemesis's, then every CPU's
    logs: list[str]  # the processes' log messages

    def outcome(self) -> Outcome:
        """For coordinator.tools.determinism: every file of the run directory but the event log, by name,
        as results (so a leak into any of them is a divergence), and the event log."""
        files = self.files()
        events = files.pop("events.log")
        return Outcome("".join(f"== {name}\n{files[name]}" for name in sorted(files)), events)

    def files(self) -> dict[str, str]:
        """The run directory's files, name -> text, but timeline.html (drawn from them)."""
        files = {"history.jsonl": "".join(line + "\n" for line in self.history)}
        for name, lines in self.transfers.items():
            files[name] = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in lines)
        files["verdict.json"] = json.dumps(self.verdict.to_json(), indent=2)
        files["events.log"] = self.events
        files["processes.log"] = "".join(line + "\n" for line in self.logs)
        return files

    def write(self, out_dir: str) -> str:
        """The run directory a wall run leaves (history.jsonl, transfers-*.jsonl, verdict.json, timeline.html)."""
        run_dir = os.path.join(out_dir, self.name)
        shutil.rmtree(run_dir, ignore_errors=True)  # a run directory holds one run
        os.makedirs(run_dir)
        for name, text in self.files().items():
            with open(os.path.join(run_dir, name), "w", encoding="utf-8") as f:
                f.write(text)
        timeline.write(run_dir)
        return run_dir
