"""The wall node's driver of the work-item table (node.work_table: which items are kept, by id, and
which are forgotten): a queued item's completion reaches the asyncio loop as a future, and FlushWork
waits on it."""

import asyncio

from node.work_table import WorkTable


class WorkItems:
    def __init__(self, node):
        self.node = node  # node.runtime.NodeRuntime (or the node process's stand-in until it registers)
        # work_id -> (node.cpu.WorkItem, asyncio.Future set once it has run)
        self._table: WorkTable = WorkTable(lambda entry: entry[1].done(), lambda: self.node.cpu_id)

    def queue_drain(self):
        """queue_work_on(cpu, mm_percpu_wq, drain_local_pages_wq); returns the queued WorkItem."""
        self._table.make_room()
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        item = self.node.queue_drain_work()

        def resolve(it) -> None:  # on the loop
            if not fut.done():
                fut.set_result(it)

        item.add_done_callback(lambda it: loop.call_soon_threadsafe(resolve, it))
        self._table.add(item.id, (item, fut))
        return item

    async def flush(self, work_id: int, timeout_s: float):
        """flush_work: wait up to `timeout_s` for the item to run. Returns (item, whether it ran);
        an item that ran is forgotten."""
        item, fut = self._table.get(work_id)
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout_s)
        except TimeoutError:
            return item, False
        self._table.forget(work_id)
        return item, True
