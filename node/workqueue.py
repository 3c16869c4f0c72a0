"""The work items a drainer queued on this CPU and has not flushed yet (QueueWork, FlushWork).

queue_work_on() and flush_work() are two RPCs here, so the item must be found again
between them, by id. A caller that queues work and never flushes it would otherwise grow
this table without bound: past MAX_WORK_ITEMS the oldest finished item is forgotten (its
FlushWork then gets NOT_FOUND), and if none has finished the queue is full.
"""

import asyncio

from node.api.errors import FailedPrecondition, NotFound

MAX_WORK_ITEMS = 1024


class WorkItems:
    def __init__(self, node):
        self.node = node  # node.runtime.NodeRuntime (or the node process's stand-in until it registers)
        self._items = {}  # work_id -> (node.cpu.WorkItem, asyncio.Future set once it has run)

    def queue_drain(self):
        """queue_work_on(cpu, mm_percpu_wq, drain_local_pages_wq); returns the queued WorkItem."""
        self._forget_flushed()
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        item = self.node.queue_drain_work()

        def resolve(it) -> None:  # on the loop
            if not fut.done():
                fut.set_result(it)

        item.add_done_callback(lambda it: loop.call_soon_threadsafe(resolve, it))
        self._items[item.id] = (item, fut)
        return item

    async def flush(self, work_id: int, timeout_s: float):
        """flush_work: wait up to `timeout_s` for the item to run. Returns (item, whether it ran);
        an item that ran is forgotten."""
        entry = self._items.get(work_id)
        if entry is None:
            raise NotFound(f"no work item {work_id} on cpu {self.node.cpu_id}")
        item, fut = entry
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout_s)
        except TimeoutError:
            return item, False
        del self._items[work_id]
        return item, True

    def _forget_flushed(self) -> None:
        if len(self._items) < MAX_WORK_ITEMS:
            return
        done = next((wid for wid, (_, fut) in self._items.items() if fut.done()), None)
        if done is None:
            raise FailedPrecondition(
                f"{len(self._items)} work items queued on cpu {self.node.cpu_id} and none finished: flush some first"
            )
        del self._items[done]
