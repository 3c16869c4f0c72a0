"""A connection attempt to a listener whose process is frozen: a peer's channel gives up on it
fast (the next attempt may reach a replacement on the same address), a caller's waits for its
call's deadline, so a tool's call survives a host too loaded to finish a handshake in 100 ms
(node.shared.transport). The listener is a real gRPC server in its own process, frozen by SIGSTOP."""

import signal
import socket
import subprocess
import sys
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from node.shared import security

SERVER = """
import sys
from concurrent import futures
import grpc
from grpc_health.v1 import health, health_pb2_grpc
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
server.wait_for_termination()
"""


@pytest.fixture
def frozen():
    """The address of a health server, SIGSTOPped; resume() lets it run again."""
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        address = f"127.0.0.1:{proc.stdout.readline().strip()}"
        proc.send_signal(signal.SIGSTOP)
        yield address, lambda: proc.send_signal(signal.SIGCONT)
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait(10)


def check(address: str, peer: bool, timeout: float) -> object:
    """The health status the server answers on a fresh channel, or the call's error code."""
    with security.channel(address, security.INSECURE, peer=peer) as ch:
        try:
            # types-grpcio-health-checking's HealthStub declares no methods (protoc's sets them in __init__).
            stub = health_pb2_grpc.HealthStub(ch)  # type: ignore[attr-defined]
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError as err:
            return err.code()
    return reply.status


def test_a_peers_channel_gives_up_on_a_frozen_listener_within_its_calls_deadline(frozen):
    """The connection reaches the frozen process's listen backlog, no SETTINGS frame comes: the
    attempt's 100 ms bound fails the call UNAVAILABLE long before its 30 s deadline."""
    address, _ = frozen
    assert check(address, peer=True, timeout=30.0) == grpc.StatusCode.UNAVAILABLE


def test_a_callers_channel_waits_through_a_frozen_listener_until_it_answers(frozen):
    """The same listener resumed a second after the call started (ten times a peer's bound): the
    caller's call is answered SERVING (before the fix, UNAVAILABLE as a peer's)."""
    address, resume = frozen
    got: list = []
    call = threading.Thread(target=lambda: got.append(check(address, peer=False, timeout=60.0)))
    call.start()
    time.sleep(1.0)  # the fault's length: the process stays frozen this long
    assert call.is_alive(), f"the call ended while the listener was frozen: {got}"
    resume()
    call.join(60.0)
    assert got == [health_pb2.HealthCheckResponse.SERVING]


def test_a_callers_channel_still_fails_at_once_where_nothing_listens():
    """Connection refused is not a slow handshake: the call fails UNAVAILABLE, not at its deadline
    (DEADLINE_EXCEEDED), so `pcpsim state` with no cluster up says so at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed on leaving: nothing listens there
    assert check(f"127.0.0.1:{port}", peer=False, timeout=30.0) == grpc.StatusCode.UNAVAILABLE
