"""`--cost-model` end to end: the file reaches a real node, whose work items then cost what it says
(tests/unit/test_cost_model.py checks the parsing and the argv; this checks that a node uses it)."""

from node.api.v1 import pcpsim_pb2 as pb
from node.shared.timebase import CostModel

DISPATCH_US = 8000.0  # 2 s of wall time at the default time scale; the default (7 us) is 1.75 ms


def test_a_workqueue_drains_work_item_costs_the_files_dispatch(make_cluster, tmp_path):
    path = tmp_path / "cost.toml"
    path.write_text(f"workqueue_dispatch_us = {DISPATCH_US}\n")
    h = make_cluster(["housekeeping"], cost_model=str(path))
    reply = h.coord.DrainAllPages(
        pb.DrainAllRequest(strategy=pb.STRATEGY_WORKQUEUE, force_all_cpus=True, trigger=pb.TRIGGER_DEMAND),
        timeout=60.0,
    )
    assert reply.status == pb.DrainAllReply.DONE and [c.cpu for c in reply.cpus] == [0], reply
    (cpu0,) = reply.cpus
    assert cpu0.ok, cpu0.error
    # The work item ran (queued to finished, less its wait to start) at least the file's dispatch: a
    # modelled sleep's lower bound, not a speed. With the default it would be about a thousandth of that.
    assert cpu0.duration_s - cpu0.wait_s >= CostModel().wall(DISPATCH_US), cpu0
