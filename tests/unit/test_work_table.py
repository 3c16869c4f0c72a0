"""node.work_table: the work items queued on a CPU and not yet flushed, the rule both node drivers keep."""

import pytest

from node.api.errors import FailedPrecondition, NotFound
from node.work_table import WorkTable


def table(limit: int = 3) -> tuple[WorkTable, set[int]]:
    done: set[int] = set()
    return WorkTable(lambda work_id: work_id in done, lambda: 2, limit), done


def test_an_item_is_found_by_its_id_until_it_is_forgotten():
    t, _ = table()
    t.add(7, 7)
    assert t.get(7) == 7
    t.forget(7)
    with pytest.raises(NotFound, match="no work item 7 on cpu 2"):
        t.get(7)


def test_a_full_table_forgets_its_oldest_finished_item_to_make_room():
    t, done = table()
    for work_id in (1, 2, 3):
        t.make_room()
        t.add(work_id, work_id)
    done.update({2, 3})
    t.make_room()
    assert len(t) == 2
    assert t.get(1) == 1 and t.get(3) == 3  # 2 was the oldest finished; 1 has not run
    with pytest.raises(NotFound):
        t.get(2)


def test_a_full_table_of_unfinished_items_refuses_and_keeps_them_all():
    t, _ = table()
    for work_id in (1, 2, 3):
        t.add(work_id, work_id)
    with pytest.raises(FailedPrecondition, match="3 work items queued on cpu 2 and none finished"):
        t.make_room()
    assert [t.get(w) for w in (1, 2, 3)] == [1, 2, 3]
