"""A drain load in the background: drain_all_pages on `pcpsim compare`'s seeded schedule, from
a thread of the `chaos run` process, until stopped. The steady-state hypothesis after the method
is then checked while the drains run."""

import collections
import threading
import time

from coordinator.tools.schedule import drain_schedule
from node.api.v1 import pcpsim_pb2 as pb


class DrainLoad:
    def __init__(self, target, strategy: pb.Strategy, interval_s: float, seed: int, max_s: float):
        self.target = target
        self.strategy = strategy
        self.offsets = drain_schedule(seed, interval_s, max_s)
        self.outcomes: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drain-load", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(130.0)  # a drain in flight finishes (its RPC deadline is 120 s)
        return dict(self.outcomes)

    def _run(self) -> None:
        start = time.monotonic()
        request = pb.DrainAllRequest(strategy=self.strategy, trigger=pb.TRIGGER_DEMAND)
        with self.target.coordinator() as stub:
            for offset in self.offsets:
                if self._stop.wait(max(0.0, start + offset - time.monotonic())):
                    return
                try:
                    reply = stub.DrainAllPages(request, timeout=120.0)
                    self.outcomes[pb.DrainAllReply.Status.Name(reply.status)] += 1
                except Exception as err:  # a drain that fails (a partitioned coordinator) is counted, not fatal
                    self.outcomes[type(err).__name__] += 1
