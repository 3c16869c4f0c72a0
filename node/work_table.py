"""The work items a drainer queued on a CPU and has not flushed yet, by id: the rule both node drivers keep
(node.workqueue, the wall node's; coordinator.tools.virtual_peer, the virtual CPU's).

queue_work_on() and flush_work() are two RPCs here (QueueWork, FlushWork), so an item must be found
again between them, by id. A caller that queues work and never flushes it would otherwise grow the table
without bound: past MAX_WORK_ITEMS the oldest finished item is forgotten (its FlushWork then gets
NOT_FOUND), and if none has finished the queue is full (FAILED_PRECONDITION, nothing queued). An item
whose flush saw it run is forgotten then.
"""

from collections.abc import Callable
from typing import Generic, TypeVar

from node.api.errors import FailedPrecondition, NotFound

MAX_WORK_ITEMS = 1024

Entry = TypeVar("Entry")


class WorkTable(Generic[Entry]):
    """Entries by work id, in the order queued; `finished(entry)`: whether its item has run; `cpu()`: the
    CPU's number, for the errors (a wall node learns it when it registers)."""

    def __init__(self, finished: Callable[[Entry], bool], cpu: Callable[[], int], limit: int = MAX_WORK_ITEMS):
        self.finished = finished
        self.cpu = cpu
        self.limit = limit
        self._items: dict[int, Entry] = {}

    def make_room(self) -> None:
        """Before queueing one more: forget the oldest finished item if the table is full, or refuse."""
        if len(self._items) < self.limit:
            return
        done = next((work_id for work_id, entry in self._items.items() if self.finished(entry)), None)
        if done is None:
            raise FailedPrecondition(
                f"{len(self._items)} work items queued on cpu {self.cpu()} and none finished: flush some first"
            )
        del self._items[done]

    def add(self, work_id: int, entry: Entry) -> None:
        self._items[work_id] = entry

    def get(self, work_id: int) -> Entry:
        entry = self._items.get(work_id)
        if entry is None:
            raise NotFound(f"no work item {work_id} on cpu {self.cpu()}")
        return entry

    def forget(self, work_id: int) -> None:
        self._items.pop(work_id, None)

    def __len__(self) -> int:
        return len(self._items)
