"""The transfer log: every page that joins or leaves an owner, with the time of its driver's clock.

Off by default (`--transfer-log PATH` turns it on), so benchmarks pay nothing. The chaos
checker (coordinator.tools.chaos.checker) replays the logs of every process of a run to see,
at every instant and not only in the audit after healing, that no page had two owners.

One JSON object per line, appended with a single write(2) on an O_APPEND descriptor: a line
is never torn by another writer (the CPU thread and the interconnect both write), and a
SIGKILL loses at most the line being written. Every line has `t` and `ev`; pages are [pfn, order] blocks.
`t` is read from the clock the opener passes: the wall's processes pass time.monotonic (CLOCK_MONOTONIC,
one clock for every process on the host). This module reads no clock itself, so node.grants, a rule
module that writes here, keeps time out of its import closure (docs/engine.md).

A node (CPU `cpu`, incarnation `inc` on every line) writes:
- refill  [pages]  the zone's answer to a refill (t: after the reply: from then on they are its)
- free    [pages]  a free sent to the zone (its pages left then: the zone may hand them out at once)
- keep    [pages]  that free failed: the node keeps its pages (a refused free changes nothing)
- commit  [pages]  a drainer's commit accepted (remote pcp lock or rcu-swap): they left
- discard          every page it held is forgotten (it was declared dead, or its holdings refused)
- alloc   pfn      alloc_pages succeeded (t: at its membership lease check, on entry)
- drain   how, n   its part of a drain ran here (`drain_ran`): how lock (a remote drainer's lock_drain
                   chunk), swap (rcu-swap's swap) or work (a drain_local_pages work item), and `pages`,
                   the base pages it took off the lists (0: none there). Written before its answer is
                   sent: the checker's evidence that a drain reported done reached the CPU
The coordinator's zone writes the changes no node sees (`owner`: a CPU, or -1 other, -2 cma,
-3 offline, as coordinator.zone_service), each line with the coordinator's `epoch` (a replaced one
still running appends to the same file):
- start            a zone was built (the coordinator (re)started): nothing is handed out
- take    [pages]  blocks recorded as `owner`'s (the system's share, CMA, offline)
- release [pages]  such blocks back to the buddy
- claim   [pages]  a resuming CPU's holdings recorded as its own again
- cpu_dead         page_alloc_cpu_dead: every block recorded as the CPU's is the zone's again
"""

import argparse
import json
import os
from collections.abc import Callable

CPU_PLACEHOLDER = "{cpu}"


class TransferLog:
    def __init__(self, path: str, clock: Callable[[], float], **fixed):
        """`fixed`: fields written on every line (a node's cpu; its incarnation is `inc`)."""
        self.path = path
        self.clock = clock
        self.fixed = fixed
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, ev: str, t: float | None = None, **fields) -> None:
        entry = {"t": self.clock() if t is None else t, "ev": ev, **self.fixed, **fields}
        os.write(self._fd, (json.dumps(entry, separators=(",", ":")) + "\n").encode())

    def close(self) -> None:
        os.close(self._fd)


def blocks(pages) -> list[list[int]]:
    """(pfn, order[, migratetype]) pages as the log's [pfn, order] blocks."""
    return [[int(p[0]), int(p[1])] for p in pages]


def drain_ran(log, how: str, pages: int) -> None:
    """Log that this CPU's part of a drain ran here (the `drain` line), if the log is on (`log`: a
    TransferLog, the virtual engine's sink of the same kind, or None)."""
    if log is not None:
        log.write("drain", how=how, pages=pages)


def add_flag(parser, env: str, who: str, per_cpu: bool) -> None:
    parser.add_argument(
        "--transfer-log",
        metavar="PATH",
        type=_log_path,
        env=env,
        help=f"append every page transfer of {who} to PATH (JSON lines, for `pcpsim chaos`; off by default)"
        + (f"; {CPU_PLACEHOLDER} in PATH is replaced by the CPU number" if per_cpu else ""),
    )


def open_log(path: str | None, clock: Callable[[], float], cpu: int | None = None, **fixed) -> TransferLog | None:
    if not path:
        return None
    if cpu is not None:
        path = path.replace(CPU_PLACEHOLDER, str(cpu))
        fixed["cpu"] = cpu
    return TransferLog(path, clock, **fixed)


def _log_path(text: str) -> str:
    where = os.path.dirname(os.path.abspath(text.replace(CPU_PLACEHOLDER, "0")))
    if not os.path.isdir(where):
        raise argparse.ArgumentTypeError(f"{text}: directory {where} does not exist")
    return text
