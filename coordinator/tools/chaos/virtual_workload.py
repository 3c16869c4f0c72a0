"""coordinator.tools.chaos.workload's DrainWorkload in virtual time, for the virtual chaos runner
(coordinator.tools.chaos.virtual_runner): its steps one at a time, each request over the simulated
network with the wall workload's deadline, each outcome recorded in the run's history as the wall
workload records it."""

from collections.abc import Callable
from typing import Any

from coordinator.drain.record import STRATEGIES
from coordinator.drain.virtual import COORDINATOR
from coordinator.tools.chaos import plan
from coordinator.tools.chaos.scenario import Scenario
from node.api.errors import DOMAIN_ERRORS, status_of

WORKLOAD = "workload"  # the workload's end of the network


def code_of(err: BaseException) -> str:
    """The status code name a wall client would have seen for `err`."""
    return status_of(err).name if isinstance(err, DOMAIN_ERRORS) else "UNKNOWN"


class VirtualWorkload:
    """coordinator.tools.chaos.workload's DrainWorkload in virtual time: its steps one at a time, each
    no earlier than its offset, each request over the network with the same deadline."""

    def __init__(self, runner: Any, scenario: Scenario, strategy: str, seed: int) -> None:
        self.runner = runner
        self.queue = runner.queue
        self.history = runner.history
        self.strategy = strategy
        w = scenario.workload
        self.force_all_cpus = w.force_all_cpus
        self.cma_pages = w.cma_pages
        self.steps = plan.steps(seed, w.drain_interval_ms / 1e3, scenario.duration_s, (w.cma_pages, w.cma_at_s))
        self.next = 0
        self.invoked = 0
        self.halted = False
        self.pending: Callable[[str, str], None] | None = None  # the request in flight: its failure

    def start(self) -> None:
        self._schedule()

    def stop(self) -> None:
        self.halted = True

    def wait(self, bound: float) -> None:
        """Run until the request in flight has its outcome, at most `bound` virtual seconds (join)."""
        until = self.queue.clock.now + bound
        while self.pending is not None and len(self.queue) and (self.queue.next_time() or 0.0) <= until:
            self.queue.step()

    def connection_lost(self) -> None:
        """The coordinator died: the request in flight fails as a gRPC call on a reset connection does."""
        if self.pending is not None:
            self.pending("UNAVAILABLE", "Socket closed")

    def _schedule(self) -> None:
        if self.halted or self.next >= len(self.steps):
            return
        offset = self.runner.at(self.steps[self.next][0])
        self.queue.at(max(self.queue.clock.now, offset), self._step)

    def _step(self) -> None:
        if self.halted:
            return
        what = self.steps[self.next][1]
        self.next += 1
        if what == plan.DRAIN:
            self._drain(self.invoked)
            self.invoked += 1
        else:
            self._contig()

    def _call(
        self,
        method: str,
        handle: Callable[[Callable[[Any], None]], None],
        answered: Callable[[Any], None],
        failed: Callable[[str, str], None],
    ) -> None:
        """One RPC from the workload to the coordinator; exactly one of answered(reply) and
        failed(code, detail) runs (the deadline's DEADLINE_EXCEEDED if nothing came back), then the next step."""
        over = [False]

        def once(fn: Callable[..., None]) -> Callable[..., None]:
            def call(*args: Any) -> None:
                if over[0]:
                    return
                over[0] = True
                self.pending = None
                fn(*args)
                self._schedule()

            return call

        self.pending = once(failed)
        self.runner.cluster.net.request(WORKLOAD, COORDINATOR, method, handle, once(answered), self.pending)
        self.queue.after(
            self.runner.virtual(self.runner.deadline_s), self.pending, "DEADLINE_EXCEEDED", "Deadline Exceeded"
        )

    def _drain(self, index: int) -> None:
        h = self.history
        plan.invoked(h, index, self.strategy, self.force_all_cpus)
        cluster = self.runner.cluster

        def handle(respond: Callable[[Any], None]) -> None:
            cluster.drain(
                STRATEGIES[self.strategy], lambda record, error: respond((record, error)), self.force_all_cpus
            )

        def answered(outcome: tuple) -> None:
            record, error = outcome
            if error is not None:
                plan.failed(h, plan.DRAIN, code_of(error), str(error), index=index)
            else:
                plan.drained(h, index, record.to_pb())

        self._call(
            "DrainAllPages",
            handle,
            answered,
            lambda code, detail: plan.failed(h, plan.DRAIN, code, detail, index=index),
        )

    def _contig(self) -> None:
        """AllocContigRange of the zone's last cma_pages pages with the wall workload's timeout
        (coordinator.contig_rule on the coordinator's driver), held to the end of the run: the stored
        range a restarted coordinator takes out of its new zone again."""
        h = self.history
        h.add("workload", "invoke", plan.CONTIG, nr_pages=self.cma_pages)
        cluster = self.runner.cluster

        def handle(respond: Callable[[Any], None]) -> None:
            cluster.alloc_contig_range(
                0, self.cma_pages, plan.CONTIG_TIMEOUT_MS, lambda result, error: respond((result, error))
            )

        def answered(outcome: tuple) -> None:
            result, error = outcome
            if error is not None:
                plan.failed(h, plan.CONTIG, code_of(error), str(error))
            else:
                plan.contig_taken(h, result.to_pb())

        self._call("AllocContigRange", handle, answered, lambda code, detail: plan.failed(h, plan.CONTIG, code, detail))
