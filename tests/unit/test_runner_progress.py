"""The wall runner's reading of every CPU's progress after healing (coordinator.tools.chaos.runner._progress)
against a scripted cluster: a GetState that breaks is asked again until RPC_TIMEOUT_S (`_asked_again`, which
the final observations' GetState uses too), and only a coordinator that answers none in that time makes
the reading an error."""

import grpc
import pytest

from coordinator.tools.chaos import runner
from node.api.v1 import pcpsim_pb2 as pb
from tests.rpc_error import RpcRefusal

PING_TIMEOUT = RpcRefusal(grpc.StatusCode.UNAVAILABLE, "Stream removed (ping timeout)")


class _Cluster:
    """GetState's answers in turn; the last one again once they run out."""

    def __init__(self, answers: list) -> None:
        self.answers = answers
        self.asked = 0

    def state(self, timeout: float) -> pb.ClusterState:
        answer = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        if isinstance(answer, Exception):
            raise answer
        return answer


# An idle CPU runs no tasks and is not scraped: the reading of a cluster of idle CPUs is empty.
IDLE = pb.ClusterState(nodes=[pb.NodeInfo(cpu=0, role=pb.ROLE_IDLE, up=True)])


@pytest.fixture(autouse=True)
def no_wait(monkeypatch):
    monkeypatch.setattr(runner.time, "sleep", lambda s: None)


def test_a_getstate_that_breaks_is_asked_again():
    """Sweep seed 4610 (`--jobs 4`): one broken GetState made the run "not live"."""
    cluster = _Cluster([PING_TIMEOUT, PING_TIMEOUT, IDLE])
    assert runner._progress(cluster) == {}
    assert cluster.asked == 3


def test_a_coordinator_that_answers_nothing_until_the_deadline_is_the_readings_error(monkeypatch):
    clock = iter(range(1000))  # each read of the clock one second later
    monkeypatch.setattr(runner.time, "monotonic", lambda: float(next(clock)))
    cluster = _Cluster([PING_TIMEOUT])
    assert runner._progress(cluster) == {"?": {"error": "coordinator: UNAVAILABLE"}}
    assert 2 <= cluster.asked <= runner.RPC_TIMEOUT_S + 1
