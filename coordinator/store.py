"""What only the coordinator knows, kept on local disk: its epoch, the ranges it took, the
processes it declared dead, and the newest epoch whose recovery ended (`rebuilt`).

No node reports a range taken by alloc_contig_range (owner CMA) or offline_pages (owner
OFFLINE), so a restarted coordinator that rebuilt its zone from the nodes' reports alone
would hand those pages out again (coordinator.recovery). And a coordinator needs an epoch
larger than every earlier one's, so nodes can refuse one that was replaced (node.epoch).
Nor does a node always know it was declared dead: one cut off past the dead timeout, whose
coordinator took its pages back, gave them to other CPUs and died before the node heard from
it again, would claim them from the next coordinator, which must refuse it (`dead`: the last
incarnation declared dead of each CPU, written before its pages are taken back; found by sweep
seed 1938, 2026-12-06: a partitioned CPU declared dead, the coordinator killed 0.7 s later, and
the CPU's claim of pages another CPU then held accepted by the new one). Nor does a node
know that a coordinator it never reached has rebuilt its zone without it: once a recovery
window ends, the pages of every CPU that did not claim them count as free and go to other
CPUs, so a claim of holdings from an older coordinator must be refused by every later one
(`rebuilt`: the newest epoch whose recovery ended, written before its zone hands out a page;
found by sweep seed 4365, 2026-12-07: a CPU stopped across two restarts claimed from the
third what the second had handed out, first, and the CPUs holding those pages were refused
all of theirs).

The store is one JSON file, `coordinator-state.json` in --state-dir, rewritten whole on
every change (a file written before `dead` was kept reads as no CPU declared dead): a
temporary file is written and fsynced, renamed over the old one, and the directory is
fsynced, so after a crash the file is either the old one or the new one, never half of
each, and a change the caller was told about survives a power loss. The caller writes
*before* the RPC that made the change answers, and before a dead CPU's pages go back to the
zone. Why a file and not SQLite: the state is a counter, a handful of ranges and an
incarnation per CPU, rewritten a few times per run; a rename is all-or-nothing on every
POSIX file system, the file is readable by an operator, and there is no journal or lock
file beside it to get wrong on a network volume.

A file that is not a store this version wrote is an error at start (StoreError), never
a silent reset: forgetting a range hands its pages out. A write that finds a larger
epoch on disk than this process's is refused: another coordinator has started on the
same directory since, and this one is fenced (StoreFenced). Each read-check-write runs
under an exclusive flock(2) of the directory (no lock file): without it a replaced
coordinator that read the old epoch just before the new one began would write the old
epoch back over the new one's. A coordinator stopped in those few milliseconds holds up
another's start until it continues or dies (the kernel drops a dead process's locks).
A new epoch starts from the ranges on disk, not those read when the process opened the
store: a range taken in between stays.

Without --state-dir the store lives in memory only (`Memory`): every start is epoch 1
and the ranges die with the process, as before the store existed; the coordinator warns
at start. The local cluster and the Kubernetes manifests always give one. A virtual
cluster keeps one `Memory` for all its coordinators, so the fencing rule above is the
same code under virtual time.
"""

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace

from node.api.errors import FailedPrecondition

FILE = "coordinator-state.json"
VERSION = 1
OWNERS = ("cma", "offline")  # coordinator.zone_service.OWNER_KINDS' names of the owners kept here


class StoreError(Exception):
    """The state directory cannot be used, or its file is not a store this version wrote."""


class StoreFenced(FailedPrecondition):
    """A coordinator with a larger epoch has written the store since this one started."""


@dataclass(frozen=True, order=True)
class TakenRange:
    start: int
    nr_pages: int
    owner: str  # "cma" or "offline"


@dataclass(frozen=True)
class State:
    """What a medium holds."""

    epoch: int = 0
    ranges: tuple[TakenRange, ...] = ()
    dead: tuple[tuple[int, str], ...] = ()  # (cpu, its last incarnation declared dead), by CPU
    rebuilt: int = 0  # the newest epoch whose recovery ended (Store.rebuilt_zone)


class Memory:
    """The medium of a store without a directory: its state in memory. One per process on the wall
    (no --state-dir); one per virtual cluster, shared by its coordinators as the wall ones share a
    directory, so a replaced one is fenced the same way (coordinator.tools.virtual_cluster)."""

    def __init__(self) -> None:
        self.state = State()

    def read(self) -> State:
        return self.state

    def write(self, state: State) -> None:
        self.state = state

    def locked(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # one process, one thread: nothing to exclude


class File:
    """The medium of a store in --state-dir: its one file, replaced whole (see the module docstring)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, FILE)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The directory flock'd: other coordinators' reads-checks-writes wait."""
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # the lock goes with the descriptor

    def read(self) -> State:
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return State()
        except OSError as err:
            raise StoreError(f"{self.path}: cannot read: {err.strerror}") from None
        try:
            return _parse(json.loads(raw))
        except (ValueError, TypeError, KeyError) as err:
            raise StoreError(
                f"{self.path}: not a coordinator state file ({err}); it is not reset on its own: "
                "restore it, or remove it knowing every CMA and offline range it lists is forgotten"
            ) from None

    def write(self, state: State) -> None:
        doc = {
            "version": VERSION,
            "epoch": state.epoch,
            "ranges": [{"start": r.start, "nr_pages": r.nr_pages, "owner": r.owner} for r in state.ranges],
            "dead": {str(cpu): incarnation for cpu, incarnation in state.dead},
            "rebuilt": state.rebuilt,
        }
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself is durable only once the directory is
        finally:
            os.close(dir_fd)


class Store:
    """One coordinator's view of the medium: its own epoch, checked against the medium's on every change."""

    def __init__(self, medium: Memory | File):
        self.medium = medium
        self.directory = medium.directory if isinstance(medium, File) else None
        self.path = medium.path if isinstance(medium, File) else ""
        self.epoch = 0
        self.ranges: list[TakenRange] = []
        self.dead: dict[int, str] = {}  # cpu -> its last incarnation declared dead
        self.rebuilt = 0  # the newest epoch on the medium whose recovery ended
        self._lock = threading.Lock()  # writes come from the event loop and tests' threads

    @classmethod
    def open(cls, directory: str | None) -> "Store":
        """Check the directory is usable and load the file if there is one."""
        if directory is None:
            return cls(Memory())
        if not os.path.isdir(directory):
            raise StoreError(f"--state-dir {directory}: not a directory")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise StoreError(f"--state-dir {directory}: not writable by this process")
        return cls.on(File(directory))

    @classmethod
    def on(cls, medium: Memory | File) -> "Store":
        """A new coordinator's view of a medium earlier ones wrote (its epoch not begun yet)."""
        store = cls(medium)
        store._load(medium.read())
        return store

    def _load(self, state: State) -> None:
        self.epoch = max(self.epoch, state.epoch)
        self.ranges = list(state.ranges)
        self.dead = dict(state.dead)
        self.rebuilt = state.rebuilt

    def begin_epoch(self) -> int:
        """This process's epoch: one more than any earlier coordinator's on this medium,
        durable before it returns (the caller serves only then)."""
        with self._lock, self.medium.locked():
            self._load(self.medium.read())
            self.epoch += 1
            self.medium.write(self._state(self.ranges, self.dead))
        return self.epoch

    def add(self, start: int, nr_pages: int, owner: str) -> None:
        self._change(lambda ranges, dead: (sorted([*ranges, TakenRange(start, nr_pages, owner)]), dead))

    def remove(self, start: int, nr_pages: int) -> None:
        self._change(lambda ranges, dead: ([r for r in ranges if (r.start, r.nr_pages) != (start, nr_pages)], dead))

    def declare_dead(self, cpu: int, incarnation: str) -> None:
        """`incarnation` of `cpu` is declared dead: durable before its pages go back to the zone."""
        self._change(lambda ranges, dead: (ranges, {**dead, cpu: incarnation}))

    def declared_dead(self, cpu: int, incarnation: str) -> bool:
        """Whether this or an earlier coordinator on the medium declared `incarnation` of `cpu` dead (the
        last one it declared dead: a process takes a new incarnation once it hears it was)."""
        return self.dead.get(cpu) == incarnation

    def rebuilt_zone(self) -> None:
        """This coordinator's recovery is over: its zone now hands out pages it owes no CPU that has not
        claimed them, so the holdings a CPU kept from an older coordinator are void (`rebuilt_since`).
        Durable before the first page is handed out (coordinator.recovery.Recovery.check_over)."""
        self._change(lambda ranges, dead: (ranges, dead), rebuilt=True)

    def rebuilt_since(self, epoch: int) -> int:
        """The newest coordinator epoch after `epoch` whose recovery ended, 0 if none. A CPU whose holdings
        are from coordinator `epoch` did not claim them there: that coordinator counted them free once its
        recovery window ended (coordinator.recovery), and may have handed them out since. Found by sweep
        seed 4365 under the wall engine (2026-12-07): a CPU stopped across two coordinator restarts claimed
        from the third the pages the second had handed out, first, so the CPUs that held them were
        refused all their holdings."""
        return self.rebuilt if self.rebuilt > epoch else 0

    def _state(self, ranges: list[TakenRange], dead: dict[int, str]) -> State:
        return State(self.epoch, tuple(ranges), tuple(sorted(dead.items())), self.rebuilt)

    def _change(self, edit, rebuilt: bool = False) -> None:
        with self._lock, self.medium.locked():
            on_disk = self.medium.read()
            if on_disk.epoch > self.epoch:
                where = self.directory or "this store"
                raise StoreFenced(
                    f"coordinator epoch {on_disk.epoch} has started on {where} since this one "
                    f"(epoch {self.epoch}): it no longer changes the state"
                )
            ranges, dead = edit(self.ranges, self.dead)
            state = self._state(ranges, dead)
            if rebuilt:
                state = replace(state, rebuilt=self.epoch)
            self.medium.write(state)
            self.ranges, self.dead, self.rebuilt = ranges, dead, state.rebuilt


def _parse(doc) -> State:
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        raise ValueError(f"version {doc.get('version') if isinstance(doc, dict) else None!r}, expected {VERSION}")
    epoch = doc["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"epoch {epoch!r}")
    ranges = []
    for r in doc["ranges"]:
        start, nr, owner = r["start"], r["nr_pages"], r["owner"]
        if any(isinstance(v, bool) or not isinstance(v, int) for v in (start, nr)) or start < 0 or nr < 1:
            raise ValueError(f"range {r!r}")
        if owner not in OWNERS:
            raise ValueError(f"range {r!r}")
        ranges.append(TakenRange(start, nr, owner))
    dead = doc.get("dead", {})  # absent from a file written before it was kept
    if not isinstance(dead, dict):
        raise ValueError(f"dead {dead!r}")
    declared = []
    for cpu, incarnation in dead.items():
        if not (isinstance(cpu, str) and cpu.isdigit() and isinstance(incarnation, str) and incarnation):
            raise ValueError(f"dead cpu {cpu!r}: {incarnation!r}")
        declared.append((int(cpu), incarnation))
    rebuilt = doc.get("rebuilt", 0)  # absent from a file written before it was kept
    if isinstance(rebuilt, bool) or not isinstance(rebuilt, int) or not 0 <= rebuilt <= epoch:
        raise ValueError(f"rebuilt {rebuilt!r}")
    return State(epoch, tuple(sorted(ranges)), tuple(sorted(declared)), rebuilt)
