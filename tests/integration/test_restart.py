"""Processes that die and come back: a CPU's pages are not lost with its process, and a
node never keeps pages that a restarted coordinator would hand out again."""

import signal
import socket
import subprocess
import sys

import grpc

from tests.procs import stop_process
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from tests.integration.conftest import RPC_TIMEOUT, assert_audit_ok, wait_until


def test_a_restarted_node_returns_its_predecessors_pages_to_the_zone(make_cluster):
    """When a CPU's process is SIGKILLed and started again, its registration (a new
    incarnation) returns every page the dead process held, on its lists or in use, to
    the zone (page_alloc_cpu_dead); the audit balances and drains reach the new process."""
    h = make_cluster(["housekeeping", "housekeeping"])
    h.wait_pages([1])
    old = h.cluster.procs["cpu1"]
    old.send_signal(signal.SIGKILL)
    old.wait(10)
    new = h.cluster.start_node(1, name="cpu1-again")

    def reregistered():
        node = next(n for n in h.state().nodes if n.cpu == 1)
        return node.up and node.address != h.addresses[1]
    wait_until(reregistered, 30.0, what="cpu1 registered again")
    assert new.poll() is None
    # Without the reclaim, the zone would still record the dead process's blocks as
    # cpu1's and the audit would fail on them.
    assert_audit_ok(h)
    drain = h.coord.DrainAllPages(pb.DrainAllRequest(strategy=pb.STRATEGY_REMOTE, force_all_cpus=True),
                                  timeout=RPC_TIMEOUT)
    assert drain.status == pb.DrainAllReply.DONE
    assert sorted(c.cpu for c in drain.cpus) == [0, 1] and all(c.ok for c in drain.cpus)
    assert_audit_ok(h)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nodes_stop_when_a_restarted_coordinator_does_not_know_them(tmp_path):
    """A coordinator that restarts has a fresh zone in which every page is free; a node
    that still holds pages must not keep using them. Its next heartbeat is refused
    (FAILED_PRECONDITION) and the node exits with status 3, for a supervisor to restart."""
    port = _free_port()
    address = f"127.0.0.1:{port}"
    log = open(tmp_path / "procs.log", "wb")
    coord_argv = [sys.executable, "-m", "coordinator", "--listen", address, "--nodes", "1",
                  "--metrics-listen", "off"]
    procs = []
    try:
        coord = subprocess.Popen(coord_argv, stdout=log, stderr=log)
        procs.append(coord)
        node = subprocess.Popen([sys.executable, "-m", "node", "--cpu", "0", "--coordinator", address,
                                 "--role", "housekeeping", "--metrics-listen", "off"], stdout=log, stderr=log)
        procs.append(node)
        with grpc.insecure_channel(address) as ch:
            stub = pb_grpc.CoordinatorStub(ch)

            def registered():
                try:
                    return any(n.up for n in stub.GetState(pb.Empty(), timeout=2).nodes)
                except grpc.RpcError:
                    return False
            wait_until(registered, 30.0, what="node registered")
        coord.send_signal(signal.SIGKILL)
        coord.wait(10)
        coord = subprocess.Popen(coord_argv, stdout=log, stderr=log)
        procs.append(coord)
        wait_until(lambda: node.poll() is not None, 30.0, what="node exit")
        assert node.returncode == 3
    finally:
        for p in procs:
            stop_process(p)
        log.close()
    assert b"does not know this CPU" in (tmp_path / "procs.log").read_bytes()
