"""Authentication and authorization on a real cluster (LocalCluster generates the tokens).

Every test runs on the shared cluster with all CPUs parked (`paused`), so zone free pages
and pcp counts are frozen. Each refused request is one that would change state if it
were served (resume the CPUs, take pages, drain, lock a pcp ...): the frozen numbers not
moving, the drain history not growing and the audit passing prove nothing happened.
"""

import glob
import os
import secrets
import signal
import stat
import urllib.request
from concurrent import futures

import grpc
import pytest

from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.shared import security
from tests.integration.conftest import (
    RPC_TIMEOUT,
    assert_audit_ok,
    cluster_up,
    run_cli,
    transfer_id,
)

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED
IDLE_CPU = 2
HK_CPU = 0

# Every RPC that changes state, with a valid request that would change it if served.
COORDINATOR_MUTATING = {
    "Register": lambda h: pb.RegisterRequest(
        cpu=IDLE_CPU, address="127.0.0.1:1", role=pb.ROLE_IDLE, incarnation="attacker"
    ),
    "Heartbeat": lambda h: pb.HeartbeatRequest(cpu=IDLE_CPU, pcp_count=12345, incarnation=h.incarnation(IDLE_CPU)),
    "Rmqueue": lambda h: pb.RmqueueRequest(
        cpu=IDLE_CPU, order=0, migratetype=1, count=8, transfer_id=transfer_id(), incarnation=h.incarnation(IDLE_CPU)
    ),
    "FreePages": lambda h: pb.FreePagesRequest(
        cpu=HK_CPU, transfer_id=transfer_id(), pages=h.snapshot(HK_CPU).pcp_pages, incarnation=h.incarnation(HK_CPU)
    ),
    "DrainAllPages": lambda h: pb.DrainAllRequest(
        strategy=pb.STRATEGY_REMOTE, force_all_cpus=True, trigger=pb.TRIGGER_DEMAND
    ),
    "GetDrainHistory": lambda h: pb.DrainHistoryRequest(reset=True),
    "Audit": lambda h: pb.Empty(),  # parks and resumes every CPU
    "SetFaults": lambda h: pb.FaultsRequest(
        rules=[pb.FaultRule(direction=pb.DIRECTION_IN, method="*", peer=-1, fail=1.0)]
    ),
}
NODE_MUTATING = {
    "PcpLockDrain": lambda cpu: pb.PcpLockDrainRequest(cpu=cpu, lease_ms=1000),
    "PcpUnlock": lambda cpu: pb.PcpUnlockRequest(cpu=cpu, token=1, commit=True),
    "QueueWork": lambda cpu: pb.QueueWorkRequest(cpu=cpu, kind=pb.WORK_DRAIN_LOCAL_PAGES),
    "FlushWork": lambda cpu: pb.FlushWorkRequest(cpu=cpu, work_id=1, timeout_ms=100),
    "SetRunState": lambda cpu: pb.RunStateRequest(cpu=cpu, paused=False),
    "GetStats": lambda cpu: pb.StatsRequest(cpu=cpu, reset=True),
    "SetFaults": lambda cpu: pb.FaultsRequest(cost_factor=1000),
}
# Node credentials may call these (a node does); the operator may call everything.
NODE_MAY = {"Register", "Heartbeat", "Rmqueue", "FreePages"}


def credentials(h, who: str) -> security.Security:
    """ "none", "forged", "operator", or "node" (the idle CPU's node credentials)."""
    if who == "none":
        return security.INSECURE
    if who == "forged":
        return security.Security(token=secrets.token_urlsafe(32))
    if who == "node":
        return security.load_token_file(h.cluster.token_files[f"node-cpu{IDLE_CPU}"], security.NODE)
    return security.load_token_file(h.cluster.token_files[who], security.OPERATOR)


class Unchanged:
    """The numbers a refused request must not move: zone free pages, every pcp count, drains recorded."""

    def __init__(self, h):
        self.h = h
        self.before = self.now()

    def now(self):
        h = self.h
        return h.frozen(), len(h.coord.GetDrainHistory(pb.DrainHistoryRequest(), timeout=RPC_TIMEOUT).drains)

    def check(self):
        assert self.now() == self.before


def call_code(address: str, sec: security.Security, service: str, method: str, request) -> grpc.StatusCode:
    with security.channel(address, sec) as ch:
        stub = (pb_grpc.CoordinatorStub if service == "Coordinator" else pb_grpc.NodeStub)(ch)
        try:
            getattr(stub, method)(request, timeout=RPC_TIMEOUT)
        except grpc.RpcError as err:
            return err.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("who", ["none", "forged"])
@pytest.mark.parametrize("method", sorted(COORDINATOR_MUTATING))
def test_coordinator_rpcs_without_a_valid_token_are_unauthenticated_and_change_nothing(paused, method, who):
    h = paused
    unchanged = Unchanged(h)
    request = COORDINATOR_MUTATING[method](h)
    assert (
        call_code(h.cluster.coordinator_address, credentials(h, who), "Coordinator", method, request) == UNAUTHENTICATED
    )
    unchanged.check()


@pytest.mark.parametrize("who", ["none", "forged"])
@pytest.mark.parametrize("method", sorted(NODE_MUTATING))
def test_node_rpcs_without_a_valid_token_are_unauthenticated_and_change_nothing(paused, method, who):
    h = paused
    unchanged = Unchanged(h)
    assert (
        call_code(h.addresses[HK_CPU], credentials(h, who), "Node", method, NODE_MUTATING[method](HK_CPU))
        == UNAUTHENTICATED
    )
    unchanged.check()


@pytest.mark.parametrize("method", sorted(NODE_MUTATING))
def test_node_credentials_may_not_drive_a_node(paused, method):
    """A node's token (what a compromised node process holds) gets PERMISSION_DENIED for every
    RPC that locks, drains, queues work on or pauses a CPU, at its own node (which knows the
    token as a node's); another node does not know it at all (UNAUTHENTICATED)."""
    h = paused
    unchanged = Unchanged(h)
    own = security.load_token_file(h.cluster.token_files[f"node-cpu{HK_CPU}"], security.NODE)
    assert call_code(h.addresses[HK_CPU], own, "Node", method, NODE_MUTATING[method](HK_CPU)) == DENIED
    assert (
        call_code(h.addresses[HK_CPU], credentials(h, "node"), "Node", method, NODE_MUTATING[method](HK_CPU))
        == UNAUTHENTICATED
    )
    unchanged.check()


@pytest.mark.parametrize("method", sorted(set(COORDINATOR_MUTATING) - NODE_MAY))
def test_node_credentials_may_not_call_coordinator_only_rpcs(paused, method):
    """A demand drain, resetting the drain history and the stop-the-world audit are the
    operator's; the CLI holding a node's token gets PERMISSION_DENIED."""
    h = paused
    unchanged = Unchanged(h)
    assert (
        call_code(
            h.cluster.coordinator_address,
            credentials(h, "node"),
            "Coordinator",
            method,
            COORDINATOR_MUTATING[method](h),
        )
        == DENIED
    )
    unchanged.check()
    assert_audit_ok(h)


def test_the_zone_stream_needs_a_token(paused):
    h = paused
    unchanged = Unchanged(h)
    for who in ("none", "forged"):
        with security.channel(h.cluster.coordinator_address, credentials(h, who)) as ch:
            call = pb_grpc.CoordinatorStub(ch).ZoneStream(
                iter([pb.ZoneRequest(rmqueue=COORDINATOR_MUTATING["Rmqueue"](h))]), timeout=RPC_TIMEOUT
            )
            with pytest.raises(grpc.RpcError) as err:
                list(call)
            assert err.value.code() == UNAUTHENTICATED
        with security.channel(h.addresses[HK_CPU], credentials(h, who)) as ch:
            call = pb_grpc.NodeStub(ch).PcpControl(
                iter([pb.PcpControlRequest(lock_drain=NODE_MUTATING["PcpLockDrain"](HK_CPU))]), timeout=RPC_TIMEOUT
            )
            with pytest.raises(grpc.RpcError) as err:
                list(call)
            assert err.value.code() == UNAUTHENTICATED
    unchanged.check()


def test_node_credentials_serve_what_a_node_does(paused):
    """The node's token works for its own RPCs: take pages as the idle CPU, free them back,
    heartbeat, and start a direct-reclaim drain (which runs: the history grows)."""
    h = paused
    sec = credentials(h, "node")
    with security.channel(h.cluster.coordinator_address, sec) as ch:
        stub = pb_grpc.CoordinatorStub(ch)
        reply = stub.Rmqueue(COORDINATOR_MUTATING["Rmqueue"](h), timeout=RPC_TIMEOUT)
        assert len(reply.pfn) == 8
        stub.FreePages(
            pb.FreePagesRequest(
                cpu=IDLE_CPU,
                transfer_id=transfer_id(),
                pages=pb.PageList(pfn=reply.pfn, order=[0] * 8, migratetype=[1] * 8),
                incarnation=h.incarnation(IDLE_CPU),
            ),
            timeout=RPC_TIMEOUT,
        )
        stub.Heartbeat(pb.HeartbeatRequest(cpu=IDLE_CPU, incarnation=h.incarnation(IDLE_CPU)), timeout=RPC_TIMEOUT)
        drains = len(h.coord.GetDrainHistory(pb.DrainHistoryRequest(), timeout=RPC_TIMEOUT).drains)
        r = stub.DrainAllPages(pb.DrainAllRequest(trigger=pb.TRIGGER_RECLAIM), timeout=60)
        assert r.trigger == pb.TRIGGER_RECLAIM
    assert len(h.coord.GetDrainHistory(pb.DrainHistoryRequest(), timeout=RPC_TIMEOUT).drains) == drains + 1
    assert_audit_ok(h)


@pytest.mark.parametrize(
    "request_",
    [
        pb.DrainAllRequest(trigger=pb.TRIGGER_RECLAIM, force_all_cpus=True),
        pb.DrainAllRequest(trigger=pb.TRIGGER_RECLAIM, strategy=pb.STRATEGY_WORKQUEUE),
    ],
    ids=["force_all_cpus", "strategy"],
)
def test_a_node_may_not_force_a_drain_of_every_cpu_or_pick_its_strategy(paused, request_):
    """Direct reclaim drains skippably, by the cluster's strategy, only CPUs with pages listed:
    node credentials asking for CMA's force_all_cpus, or for workqueue's kworkers on every
    isolated CPU, get PERMISSION_DENIED and no drain runs."""
    h = paused
    unchanged = Unchanged(h)
    node = credentials(h, "node")
    assert call_code(h.cluster.coordinator_address, node, "Coordinator", "DrainAllPages", request_) == DENIED
    unchanged.check()


@pytest.mark.parametrize("method", [*sorted(NODE_MAY), "ZoneStream"])
def test_a_node_speaks_only_for_its_own_cpu(paused, method):
    """cpu2's node credentials naming cpu0 in a Register, Heartbeat, Rmqueue, FreePages or a
    zone stream operation get PERMISSION_DENIED, and nothing changes (with cpu0's live
    incarnation, so only the binding stops them)."""
    h = paused
    unchanged = Unchanged(h)
    live = h.incarnation(HK_CPU)
    requests = {
        "Register": pb.RegisterRequest(
            cpu=HK_CPU, address="127.0.0.1:1", role=pb.ROLE_HOUSEKEEPING, incarnation="impostor"
        ),
        "Heartbeat": pb.HeartbeatRequest(cpu=HK_CPU, pcp_count=1, incarnation=live),
        "Rmqueue": pb.RmqueueRequest(
            cpu=HK_CPU, order=0, migratetype=1, count=8, transfer_id=transfer_id(), incarnation=live
        ),
        "FreePages": pb.FreePagesRequest(
            cpu=HK_CPU, transfer_id=transfer_id(), pages=h.snapshot(HK_CPU).pcp_pages, incarnation=live
        ),
    }
    sec = credentials(h, "node")
    if method == "ZoneStream":
        with security.channel(h.cluster.coordinator_address, sec) as ch:
            call = pb_grpc.CoordinatorStub(ch).ZoneStream(
                iter([pb.ZoneRequest(rmqueue=requests["Rmqueue"])]), timeout=RPC_TIMEOUT
            )
            with pytest.raises(grpc.RpcError) as err:
                list(call)
            assert err.value.code() == DENIED
    else:
        assert call_code(h.cluster.coordinator_address, sec, "Coordinator", method, requests[method]) == DENIED
    unchanged.check()
    assert_audit_ok(h)


def test_refusals_are_counted_on_metrics_and_the_token_never_appears_in_logs(shared_cluster):
    """pcpsim_rpc_refused_total{reason} on the coordinator's /metrics counts refused calls;
    no log file of any process contains either secret."""
    h = shared_cluster
    metrics = h.state().metrics_address

    def refused(reason):
        with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(f'pcpsim_rpc_refused_total{{reason="{reason}"}}'):
                    return float(line.split()[-1])
        return 0.0

    before = {r: refused(r) for r in ("missing_token", "bad_token", "role")}
    call_code(h.cluster.coordinator_address, credentials(h, "none"), "Coordinator", "GetState", pb.Empty())
    call_code(h.cluster.coordinator_address, credentials(h, "forged"), "Coordinator", "GetState", pb.Empty())
    call_code(h.cluster.coordinator_address, credentials(h, "node"), "Coordinator", "GetState", pb.Empty())
    assert {r: refused(r) - before[r] for r in before} == {"missing_token": 1, "bad_token": 1, "role": 1}
    secrets_ = [credentials(h, "operator").token] + [
        security.load_token_file(h.cluster.token_files[f"node-cpu{c}"], security.NODE).token for c in h.nodes
    ]
    logs = glob.glob(os.path.join(h.cluster.run_dir, "*.log"))
    assert logs
    for path in logs:
        text = open(path, errors="replace").read()
        assert not any(s in text for s in secrets_), path


class Capture(grpc.GenericRpcHandler):
    """A server that answers nothing and keeps the headers of every call it gets."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []

    def service(self, details):
        self.calls.append((details.method, dict(details.invocation_metadata)))
        return None  # UNIMPLEMENTED


def test_a_node_that_registers_its_own_address_captures_nothing_it_can_use_elsewhere(tmp_path):
    """The coordinator dials a CPU at the address its node registered, so a node can register a server
    of its own and read what the coordinator presents there. With only cpu2's token file: register
    cpu2 at such a server, make the coordinator drain it (a direct reclaim drain), and capture the
    authorization header. What it holds is not the operator secret, and neither the coordinator nor
    another node accepts it."""
    with cluster_up(tmp_path, "--nodes", "3") as up:
        state = up.state()
        secrets_dir = os.path.dirname(state["token_file"])
        node2 = security.load_token_file(os.path.join(secrets_dir, "node-cpu2.token"), security.NODE)
        operator = security.load_token_file(state["token_file"], security.OPERATOR)
        capture = Capture()
        server = grpc.server(futures.ThreadPoolExecutor(2), handlers=[capture])
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        # The real cpu2 is stopped meanwhile: its next heartbeat, refused (replaced), would register it
        # afresh and replace the rogue before the drain reached it (one CI run of 1f35621, 2026-12-07).
        real = state["pids"]["cpu2"]
        os.kill(real, signal.SIGSTOP)
        try:
            with security.channel(state["coordinator"], node2) as ch:
                stub = pb_grpc.CoordinatorStub(ch)
                register = pb.RegisterRequest(
                    cpu=2, address=f"127.0.0.1:{port}", role=pb.ROLE_HOUSEKEEPING, incarnation="rogue"
                )
                stub.Register(register, timeout=RPC_TIMEOUT)
                stub.Heartbeat(pb.HeartbeatRequest(cpu=2, pcp_count=500, incarnation="rogue"), timeout=RPC_TIMEOUT)
                stub.DrainAllPages(pb.DrainAllRequest(trigger=pb.TRIGGER_RECLAIM), timeout=60)
        finally:
            os.kill(real, signal.SIGCONT)
            server.stop(0)
        presented = {md.get("authorization") for method, md in capture.calls if method.startswith("/pcpsim.v1.Node/")}
        assert presented and None not in presented, capture.calls
        [header] = presented
        captured = security.Security(token=header.removeprefix("Bearer "))
        operator_presented = captured.token == operator.token  # not in the assertion: no secret in a report
        assert not operator_presented
        assert call_code(state["coordinator"], captured, "Coordinator", "GetState", pb.Empty()) == UNAUTHENTICATED
        node0 = next(n for n in operator_state(state, operator).nodes if n.cpu == 0)
        for method, request in (("Snapshot", pb.CpuRequest(cpu=0)), ("SetRunState", pb.RunStateRequest(cpu=0))):
            assert call_code(node0.address, captured, "Node", method, request) == UNAUTHENTICATED


def operator_state(state: dict, operator: security.Security) -> pb.ClusterState:
    with security.channel(state["coordinator"], operator) as ch:
        return pb_grpc.CoordinatorStub(ch).GetState(pb.Empty(), timeout=RPC_TIMEOUT)


def test_cluster_up_generates_private_tokens_and_warns_when_it_binds_beyond_loopback(tmp_path):
    """`cluster up --listen-host 0.0.0.0` (tokens on, no TLS) warns on stderr that the ports are
    reachable without TLS, writes the token files mode 0600 and names the operator's in the state
    file, prints no secret, and `pcpsim state` authenticates from the state file alone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PCPSIM_")}
    with cluster_up(tmp_path, "--nodes", "2", "--listen-host", "0.0.0.0", env=env) as up:
        state = up.state()
        token_file = state["token_file"]
        secret_dir = os.path.dirname(token_file)
        assert stat.S_IMODE(os.stat(secret_dir).st_mode) == 0o700
        for name in os.listdir(secret_dir):
            assert stat.S_IMODE(os.stat(os.path.join(secret_dir, name)).st_mode) == 0o600
        r = run_cli("state", "--no-audit", "--state", str(up.state_path), env=env)
        assert r.returncode == 0, r.stderr
        secrets_ = [
            line.split("=", 1)[1]
            for name in os.listdir(secret_dir)
            for line in open(os.path.join(secret_dir, name)).read().split()
        ]
        printed = up.output() + r.stdout + r.stderr
        assert "warning: listening on 0.0.0.0" in printed and "without TLS" in printed
        assert not any(s in printed for s in secrets_)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--tls-cert", "c.pem"], "go together"),
        (["--tls-client-auth"], "needs --tls-ca"),
        (["--tls-ca", "/nonexistent/ca.pem"], "cannot read CA certificate"),
        (["--listen-host", "bad host!"], "--listen-host"),
    ],
)
def test_cluster_up_refuses_incomplete_tls_and_bad_hosts_and_starts_nothing(tmp_path, argv, message):
    state = tmp_path / "cluster.json"
    r = run_cli(
        "cluster", "up", "--nodes", "1", "--state", str(state), "--run-dir", str(tmp_path / "run"), *argv, timeout=60
    )
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not state.exists() and not (tmp_path / "run").exists()
