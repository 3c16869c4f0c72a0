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
coordinator.tools.chaos.plan's, which both drivers use: DrainWorkload here (a thread over gRPC, wall
time) and coordinator.tools.chaos.virtual_workload (events in virtual time).
"""

import threading
import time

import grpc

from coordinator.drain.record import STRATEGIES
from coordinator.tools.chaos.plan import CONTIG, CONTIG_TIMEOUT_MS, DRAIN, contig_taken, drained, failed, invoked, steps
from node.api.v1 import pcpsim_pb2 as pb


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
