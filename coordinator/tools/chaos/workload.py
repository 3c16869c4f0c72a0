"""The chaos workload: drain_all_pages on a seeded schedule, one at a time, every invoke and
completion in the history (the CPUs' own tasks, allocation churn and IRQs run meanwhile).

A completion is `ok` (DONE or SKIPPED), `fail` (FAILED: the drain ended, and says which
CPUs it could not drain and why) or `info` when the caller cannot know what happened (the
coordinator died or did not answer in time). Each drain's deadline is its bound (see
coordinator.tools.chaos.checker.drain_bound) plus a margin, so a drain that never resolves shows
up as an `info` with DEADLINE_EXCEEDED instead of hanging the run.
"""

import threading
import time

import grpc

from coordinator.drain.record import STRATEGIES
from coordinator.tools.schedule import drain_schedule
from node.api.v1 import pcpsim_pb2 as pb

DEFINITE = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION)


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
    ):
        super().__init__(name="chaos-workload", daemon=True)
        self.stub = stub
        self.history = history
        self.strategy = strategy
        self.offsets = drain_schedule(seed, interval_s, duration_s)
        self.force_all_cpus = force_all_cpus
        self.deadline_s = deadline_s
        self._halt = threading.Event()
        self.invoked = 0

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        start = time.monotonic()
        for offset in self.offsets:
            if self._halt.wait(max(0.0, start + offset - time.monotonic())):
                return
            self.drain(self.invoked)
            self.invoked += 1

    def drain(self, index: int) -> None:
        h = self.history
        h.add("workload", "invoke", "drain", index=index, strategy=self.strategy, force_all_cpus=self.force_all_cpus)
        try:
            reply = self.stub.DrainAllPages(
                pb.DrainAllRequest(
                    strategy=STRATEGIES[self.strategy], force_all_cpus=self.force_all_cpus, trigger=pb.TRIGGER_DEMAND
                ),
                timeout=self.deadline_s,
            )
        except grpc.RpcError as err:
            h.add(
                "workload",
                "fail" if err.code() in DEFINITE else "info",
                "drain",
                index=index,
                error=f"{err.code().name}: {err.details()}",
            )
            return
        cpus = [{"cpu": c.cpu, "ok": c.ok, "pages": c.pages, "error": c.error} for c in reply.cpus]
        status = pb.DrainAllReply.Status.Name(reply.status)
        h.add(
            "workload",
            "fail" if reply.status == pb.DrainAllReply.FAILED else "ok",
            "drain",
            index=index,
            status=status,
            duration_s=reply.duration_s,
            cpus=cpus,
        )
