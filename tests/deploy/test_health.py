"""The standard gRPC health service: a node says NOT_SERVING while it has not registered,
and the probe the image's HEALTHCHECK runs exits 1 then, 0 on SERVING (see
test_manifests_run for SERVING on a running cluster). No other RPC is needed to ask."""

import os
import subprocess
import sys
import time

import grpc
import pytest

from coordinator.tools.prometheus import free_port
from node.shared import health_probe
from tests.procs import stop_process


def test_a_node_that_has_not_registered_is_not_serving():
    grpc_port, nowhere = free_port(), free_port()  # nothing listens at `nowhere`
    env = {k: v for k, v in os.environ.items() if not k.startswith("PCPSIM_")}
    env.update(
        PCPSIM_CPU="0",
        PCPSIM_COORDINATOR=f"localhost:{nowhere}",
        PCPSIM_LISTEN=f"127.0.0.1:{grpc_port}",
        PCPSIM_METRICS_LISTEN="off",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "node", "--parent-pid", str(os.getpid())],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    address = f"127.0.0.1:{grpc_port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                status = health_probe.check(address, timeout=1.0)
                break
            except grpc.RpcError:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "the node's health service never answered"
                time.sleep(0.1)
        assert status == "NOT_SERVING"
        assert health_probe.check(address, "pcpsim.v1.Node", timeout=1.0) == "NOT_SERVING"
        assert health_probe.main([address]) == 1
        with pytest.raises(grpc.RpcError) as info:
            health_probe.check(address, "no.such.Service", timeout=1.0)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        stop_process(proc)
        proc.stderr.close()


def test_the_probe_finds_its_own_port_from_the_environment():
    assert health_probe.own_address({"PCPSIM_LISTEN": "0.0.0.0:50051"}) == "127.0.0.1:50051"
    assert health_probe.own_address({"PCPSIM_LISTEN": "[::]:50051"}) == "127.0.0.1:50051"
    assert health_probe.own_address({"PCPSIM_LISTEN": "10.1.2.3:7"}) == "10.1.2.3:7"
    with pytest.raises(ValueError, match="port 0"):
        health_probe.own_address({"PCPSIM_LISTEN": "0.0.0.0:0"})


def test_the_probe_fails_on_an_address_where_nothing_listens(capsys):
    port = free_port()
    assert health_probe.main([f"127.0.0.1:{port}", "--timeout", "2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"127.0.0.1:{port}: ") and ("UNAVAILABLE" in err or "DEADLINE_EXCEEDED" in err)
