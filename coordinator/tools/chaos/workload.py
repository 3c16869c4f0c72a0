"""The chaos workload: drain_all_pages on a seeded schedule, one at a time, every invoke and
completion in the history (the CPUs' own tasks, allocation churn and IRQs run meanwhile).

A completion is `ok` (DONE or SKIPPED), `fail` (FAILED: the drain ended, and says which
CPUs it could not drain and why) or `info` when the caller cannot know what happened (the
coordinator died or did not answer in time). Each drain's deadline is its bound (see
coordinator.tools.chaos.checker.drain_bound) plus a margin, so a drain that never resolves shows
up as an `info` with DEADLINE_EXCEEDED instead of hanging the run.

With `cma` (nr_pages, at_s), the workload also takes a CMA range once, at its offset in the
schedule: AllocContigRange of the zone's last nr_pages pages, held to the end of the run
(`alloc-contig` in the history, with the range's start_pfn and nr_pages once it is `ok`).
No CPU may hold a page of it from then on, whatever happens to the coordinator.

The schedule (`steps`) and the history's entries (`invoked`, `drained`, `contig_taken`, `failed`) are
functions both drivers use: DrainWorkload here (a thread over gRPC, wall time) and
coordinator.tools.chaos.virtual_runner (events in virtual time).
"""

import threading
import time

import grpc

from coordinator.drain.record import STRATEGIES
from coordinator.tools.schedule import drain_schedule
from node.api.v1 import pcpsim_pb2 as pb

DEFINITE = ("INVALID_ARGUMENT", "FAILED_PRECONDITION")  # status codes that say the operation did not happen
CONTIG_TIMEOUT_MS = 5000
DRAIN, CONTIG = "drain", "alloc-contig"


def steps(seed: int, interval_s: float, duration_s: float, cma: tuple[int, float]) -> list[tuple[float, str]]:
    """(offset, DRAIN or CONTIG) in order: the seeded drain schedule, and the CMA range's take if any."""
    out = [(t, DRAIN) for t in drain_schedule(seed, interval_s, duration_s)]
    if cma[0]:
        out = sorted([*out, (cma[1], CONTIG)], key=lambda s: s[0])
    return out


def failed(history, f: str, code: str, details: str, **fields) -> None:
    """An operation's error: `fail` when the code says it did not happen, else `info` (unknown)."""
    history.add("workload", "fail" if code in DEFINITE else "info", f, **fields, error=f"{code}: {details}")


def invoked(history, index: int, strategy: str, force_all_cpus: bool) -> None:
    history.add("workload", "invoke", DRAIN, index=index, strategy=strategy, force_all_cpus=force_all_cpus)


def drained(history, index: int, reply: pb.DrainAllReply) -> None:
    cpus = [{"cpu": c.cpu, "ok": c.ok, "pages": c.pages, "error": c.error} for c in reply.cpus]
    status = pb.DrainAllReply.Status.Name(reply.status)
    history.add(
        "workload",
        "fail" if reply.status == pb.DrainAllReply.FAILED else "ok",
        DRAIN,
        index=index,
        status=status,
        duration_s=reply.duration_s,
        cpus=cpus,
    )


def contig_taken(history, reply: pb.ContigRangeReply) -> None:
    history.add(
        "workload",
        "ok" if reply.ok else "fail",
        CONTIG,
        start_pfn=reply.start_pfn,
        nr_pages=reply.nr_pages,
        attempts=reply.attempts,
        duration_s=reply.duration_s,
        **({"error": reply.error} if reply.error else {}),
    )


class DrainWorkload(threading.Thread):
    def __init__(
        self,
        stub,
        history,
        strategy: str,
        interval_s: float,
        duration_s: float,
        seed: int,
        force_all_cpus: bool,
        deadline_s: float,
        cma: tuple[int, float] = (0, 0.0),
    ):
        super().__init__(name="chaos-workload", daemon=True)
        self.stub = stub
        self.history = history
        self.strategy = strategy
        self.steps = [
            (t, self._drain_next if what == DRAIN else lambda: self.alloc_contig(cma[0]))
            for t, what in steps(seed, interval_s, duration_s, cma)
        ]
        self.force_all_cpus = force_all_cpus
        self.deadline_s = deadline_s
        self._halt = threading.Event()
        self.invoked = 0

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        start = time.monotonic()
        for offset, step in self.steps:
            if self._halt.wait(max(0.0, start + offset - time.monotonic())):
                return
            step()

    def _drain_next(self) -> None:
        self.drain(self.invoked)
        self.invoked += 1

    def alloc_contig(self, nr_pages: int) -> None:
        h = self.history
        h.add("workload", "invoke", CONTIG, nr_pages=nr_pages)
        try:
            reply = self.stub.AllocContigRange(
                pb.ContigRangeRequest(nr_pages=nr_pages, timeout_ms=CONTIG_TIMEOUT_MS), timeout=self.deadline_s
            )
        except grpc.RpcError as err:
            failed(h, CONTIG, err.code().name, err.details() or "")
            return
        contig_taken(h, reply)

    def drain(self, index: int) -> None:
        invoked(self.history, index, self.strategy, self.force_all_cpus)
        try:
            reply = self.stub.DrainAllPages(
                pb.DrainAllRequest(
                    strategy=STRATEGIES[self.strategy], force_all_cpus=self.force_all_cpus, trigger=pb.TRIGGER_DEMAND
                ),
                timeout=self.deadline_s,
            )
        except grpc.RpcError as err:
            failed(self.history, DRAIN, err.code().name, err.details() or "", index=index)
            return
        drained(self.history, index, reply)
