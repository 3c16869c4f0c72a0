"""node.shared.security: the role table, token files, size limits, and the interceptor on a real
grpc.aio server on 127.0.0.1 (in this process: the servicer is a real NodeServicer over a
pure pcp, no cluster)."""

import os
import stat
import time
import types

import grpc
import pytest
from prometheus_client import CollectorRegistry

from node.api import validate
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.epoch import CoordinatorEpoch
from node.mm.pcp import PerCpuPages
from node.remote_lock import RemotePcpLock
from node.server import NodeServicer
from node.shared import security
from node.shared.faults import Faults
from node.shared.security import ACCESS, COORDINATOR, NODE, OPERATOR, SecurityError, interceptors

SECRET = "s" * 32


def every_method() -> set[str]:
    return {f"/{svc.full_name}/{m.name}" for svc in pb.DESCRIPTOR.services_by_name.values() for m in svc.methods}


def test_every_method_of_both_services_has_exactly_one_row_in_the_role_table():
    """ACCESS names each method of the proto's services, and nothing else (a stale row would
    hide a renamed method, which the interceptor then refuses)."""
    assert set(ACCESS) == every_method()
    assert all(rules and set(rules) <= {NODE, COORDINATOR, OPERATOR} for rules in ACCESS.values())


def test_every_method_is_of_a_kind_the_interceptor_wraps():
    """AuthInterceptor wraps unary-unary and bidirectional streams; a method of another kind
    must get a wrapper there before it is added."""
    for svc in pb.DESCRIPTOR.services_by_name.values():
        for m in svc.methods:
            assert m.client_streaming == m.server_streaming, f"{svc.name}/{m.name}"


def test_a_node_may_use_only_zone_and_membership_rpcs():
    """Node credentials reach no method of the Node service and none of the operator's views;
    the operator reaches everything unconditionally."""
    node_methods = {m for m, rules in ACCESS.items() if NODE in rules}
    assert node_methods == {
        f"/pcpsim.v1.Coordinator/{m}"
        for m in ("Register", "Heartbeat", "Rmqueue", "FreePages", "ZoneStream", "DrainAllPages")
    }
    assert all(rules.get(OPERATOR, "no") is security.ALWAYS for rules in ACCESS.values())


def test_the_coordinator_role_reaches_only_the_node_methods_the_coordinator_calls():
    """What the coordinator presents to a node opens no Coordinator method (GetState, SetFaults, ...)
    and not the node's operator views (GetPcp, GetStats, its faults)."""
    assert {m for m, rules in ACCESS.items() if COORDINATOR in rules} == {
        f"/pcpsim.v1.Node/{m}"
        for m in ("PcpLockDrain", "PcpUnlock", "PcpControl", "QueueWork", "FlushWork", "SetRunState", "Snapshot")
    }
    assert all(ACCESS[m][COORDINATOR] is security.ALWAYS for m in ACCESS if COORDINATOR in ACCESS[m])


def test_a_node_may_start_only_a_direct_reclaim_drain():
    allowed = ACCESS["/pcpsim.v1.Coordinator/DrainAllPages"][NODE]
    assert allowed(pb.DrainAllRequest(trigger=pb.TRIGGER_RECLAIM), 3)
    for trigger in (pb.TRIGGER_DEMAND, pb.TRIGGER_UNSPECIFIED, 77):
        assert not allowed(pb.DrainAllRequest(trigger=trigger), 3)


def test_a_bound_node_names_only_its_own_cpu_and_an_unbound_one_any():
    own = ACCESS["/pcpsim.v1.Coordinator/Rmqueue"][NODE]
    assert own(pb.RmqueueRequest(cpu=3), 3) and not own(pb.RmqueueRequest(cpu=2), 3)
    assert own(pb.RmqueueRequest(cpu=2), None)
    stream = ACCESS["/pcpsim.v1.Coordinator/ZoneStream"][NODE]
    assert stream(pb.ZoneRequest(free=pb.FreePagesRequest(cpu=3)), 3)
    assert not stream(pb.ZoneRequest(rmqueue=pb.RmqueueRequest(cpu=0)), 3)
    assert stream(pb.ZoneRequest(), 3)  # no operation: the servicer refuses it (INVALID_ARGUMENT)


# ------------------------------------------------------------------ token files
def write(tmp_path, text: str, mode: int = 0o600) -> str:
    path = tmp_path / "tokens"
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


def test_generated_files_are_private_and_a_node_file_holds_only_the_operator_digest(tmp_path):
    paths = security.generate_token_files(str(tmp_path / "secrets"))
    assert stat.S_IMODE(os.stat(tmp_path / "secrets").st_mode) == 0o700
    for path in paths.values():
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    operator = security.load_token_file(paths["operator"], OPERATOR).token
    node = security.load_token_file(paths["node"], NODE)
    assert operator not in open(paths["node"]).read()
    with pytest.raises(SecurityError, match="no operator secret"):
        security.load_token_file(paths["node"], OPERATOR)
    coordinator = security.load_token_file(paths["coordinator"], OPERATOR)
    assert coordinator.token == operator and dict(coordinator.accept) == dict(node.accept)
    assert (
        len(
            {
                security.load_token_file(p, NODE if n == "node" else OPERATOR).token
                for n, p in security.generate_token_files(str(tmp_path / "again")).items()
            }
            | {operator}
        )
        == 3
    )


def test_bound_node_files_name_their_cpu_and_hold_no_key(tmp_path):
    """With nr_cpus, each CPU gets its own node token (cpuN.MAC); the coordinator holds the key
    that checks them, a node file neither the key nor another CPU's token."""
    paths = security.generate_token_files(str(tmp_path / "s"), nr_cpus=3)
    assert set(paths) == {"coordinator", "operator", "node-cpu0", "node-cpu1", "node-cpu2"}
    coordinator = security.load_token_file(paths["coordinator"], OPERATOR)
    [(role, key)] = coordinator.keys
    assert role == NODE and coordinator.auth
    for cpu in range(3):
        token = security.load_token_file(paths[f"node-cpu{cpu}"], NODE).token
        assert token == security.bound_token(key, cpu) and token.startswith(f"cpu{cpu}.")
        text = open(paths[f"node-cpu{cpu}"]).read()
        assert key.decode() not in text and "key" not in text


def test_the_coordinator_presents_each_node_a_token_only_that_node_accepts(tmp_path):
    """A node registers the address the coordinator dials, so it sees what the coordinator presents
    there: with CPU-bound files that is a coordinator token bound to its CPU, which no other node,
    no coordinator and no operator check accepts; never the operator secret."""
    paths = security.generate_token_files(str(tmp_path / "s"), nr_cpus=3)
    coordinator = security.load_token_file(paths["coordinator"], OPERATOR)
    nodes = [security.load_token_file(paths[f"node-cpu{cpu}"], NODE) for cpu in range(3)]
    for cpu in range(3):
        toward = security.toward_cpu(coordinator, cpu)
        assert toward.token != coordinator.token and toward.tls == coordinator.tls
        for other, node in enumerate(nodes):
            role = security.tokens.identify(toward.token, node.accept, node.keys)
            assert role == ((COORDINATOR, None) if other == cpu else (None, None)), (cpu, other)
        assert security.tokens.identify(toward.token, coordinator.accept, coordinator.keys) == (None, None)
        assert toward.token not in open(paths[f"node-cpu{cpu}"]).read()


def test_with_a_shared_node_secret_the_coordinator_presents_the_coordinator_secret(tmp_path):
    """`pcpsim tokens`: one coordinator secret, its digest in the node file; and a file that names no
    coordinator role (written before it existed) keeps presenting the process's own secret."""
    paths = security.generate_token_files(str(tmp_path / "s"))
    coordinator = security.load_token_file(paths["coordinator"], OPERATOR)
    node = security.load_token_file(paths["node"], NODE)
    toward = security.toward_cpu(coordinator, 5)
    assert toward.token not in (coordinator.token, node.token)
    assert security.tokens.identify(toward.token, node.accept, node.keys) == (COORDINATOR, None)
    old = security.load_token_file(write(tmp_path, f"node={SECRET}\noperator={'o' * 32}"), OPERATOR)
    assert security.toward_cpu(old, 5) is old


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "no role"),
        ("# only a comment\n", "no role"),
        (f"root={SECRET}", "ROLE one of"),
        (f"node {SECRET}", "ROLE one of"),
        ("node=short", "shorter than 16"),
        (f"node={SECRET}\nnode={SECRET}", "given twice"),
        ("operator.sha256=abc", "64 hex digits"),
        ("operator.sha256=" + "zz" * 32, "64 hex digits"),
    ],
)
def test_a_malformed_token_file_is_refused_without_echoing_a_secret(tmp_path, text, message):
    with pytest.raises(SecurityError, match=message) as err:
        security.load_token_file(write(tmp_path, text), NODE)
    assert SECRET not in str(err.value)


def test_a_world_readable_or_missing_token_file_is_refused(tmp_path):
    with pytest.raises(SecurityError, match="readable by every user"):
        security.load_token_file(write(tmp_path, f"node={SECRET}", 0o644), NODE)
    with pytest.raises(SecurityError, match="cannot read"):
        security.load_token_file(str(tmp_path / "absent"), NODE)


def test_tls_flags_must_be_complete(tmp_path):
    pem = tmp_path / "x.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(SecurityError, match="go together"):
        security.load_tls(str(pem), None, None, False)
    with pytest.raises(SecurityError, match="needs --tls-ca"):
        security.load_tls(str(pem), str(pem), None, True)
    (tmp_path / "junk").write_text("hello")
    with pytest.raises(SecurityError, match="not PEM"):
        security.load_tls(None, None, str(tmp_path / "junk"), False)
    assert security.load_tls(None, None, None, False) is None


def test_processes_refuse_bad_security_flags_at_start(tmp_path):
    """The node and coordinator parsers exit 2 naming the problem, not a secret."""
    from coordinator.__main__ import parse_args as coordinator_args
    from node.__main__ import parse_args as node_args

    bad = write(tmp_path, "node=short")
    with pytest.raises(SystemExit) as err:
        coordinator_args(["--nodes", "1"], environ={"PCPSIM_TOKEN_FILE": bad})
    assert err.value.code == 2
    with pytest.raises(SystemExit):
        node_args(["--cpu", "0", "--coordinator", "127.0.0.1:1", "--tls-client-auth"], environ={})
    ok = write(tmp_path, f"node={SECRET}\noperator.sha256={'ab' * 32}")
    args = node_args(["--cpu", "0", "--coordinator", "127.0.0.1:1"], environ={"PCPSIM_TOKEN_FILE": ok})
    assert args.security.token == SECRET and args.security.auth


def test_loopback_binds_need_no_warning_and_others_do():
    assert security.exposure_warning("127.0.0.1:0", False, False) is None
    assert security.exposure_warning("[::1]:0", False, True) is None
    assert security.exposure_warning("localhost:50051", False, False) is None
    assert "without TLS" in security.exposure_warning("0.0.0.0:50051", False, True)
    assert "TLS or token authentication" in security.exposure_warning("10.1.2.3:1", False, False)
    assert security.exposure_warning("0.0.0.0:50051", True, True) is None


# ------------------------------------------------------------------ message size
def test_the_request_limit_admits_the_largest_legitimate_requests_and_little_more():
    """A FreePages on the zone stream and a Register reporting holdings, each of
    MAX_PAGES_PER_MESSAGE blocks at the widest encoding with the longest names, fit; the limit
    is within a KiB of the larger, so a client cannot make a server buffer much more."""
    n = validate.MAX_PAGES_PER_MESSAGE
    pages = pb.PageList(pfn=[2**64 - 1] * n, order=[10] * n, migratetype=[4] * n)
    free = pb.ZoneRequest(
        free=pb.FreePagesRequest(
            cpu=2**32 - 1, transfer_id="t" * validate.MAX_TRANSFER_ID, incarnation="i" * 255, pages=pages
        )
    )
    register = pb.RegisterRequest(
        cpu=2**32 - 1,
        address="a" * 255,
        metrics_address="m" * 255,
        incarnation="i" * 255,
        role=pb.ROLE_IDLE,
        resume=True,
        holdings=pages,
    )
    largest = max(free.ByteSize(), register.ByteSize())
    assert largest <= security.MAX_REQUEST_BYTES < largest + 1024


# ------------------------------------------------------------------ the interceptor, served
class _Served:
    def __init__(self, server, port, registry):
        self.server, self.address, self.registry = server, f"127.0.0.1:{port}", registry

    def refused(self, reason: str) -> float:
        return self.registry.get_sample_value("pcpsim_rpc_refused_total", {"reason": reason}) or 0.0


@pytest.fixture
async def served(tmp_path):
    """A NodeServicer (cpu 0, a bare pcp) behind the interceptor, accepting the generated files' roles."""
    paths = security.generate_token_files(str(tmp_path / "secrets"), nr_cpus=2)
    registry = CollectorRegistry()
    server = grpc.aio.server(
        interceptors=[security.AuthInterceptor(security.load_token_file(paths["coordinator"], OPERATOR), registry)],
        options=security.server_options(),
    )
    pcp = PerCpuPages(0)
    lock = RemotePcpLock(pcp, time.monotonic)
    node = types.SimpleNamespace(cpu_id=0, pcp=pcp, remote_lock=lock, remote_drain=lock, epoch=CoordinatorEpoch())
    pb_grpc.add_NodeServicer_to_server(NodeServicer(node, Faults()), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    s = _Served(server, port, registry)
    s.operator = security.load_token_file(paths["operator"], OPERATOR)
    s.node = security.load_token_file(paths["node-cpu1"], NODE)
    try:
        yield s
    finally:
        await server.stop(None)


async def code_of(call) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def test_tokens_map_to_roles_and_refusals_are_counted_by_reason(served):
    channels = []

    def get(sec):
        channels.append(security.aio_channel(served.address, sec))  # held: a dropped channel closes
        return pb_grpc.NodeStub(channels[-1]).GetPcp(pb.CpuRequest(cpu=0), timeout=5)

    assert await code_of(get(served.operator)) == grpc.StatusCode.OK
    assert await code_of(get(security.INSECURE)) == grpc.StatusCode.UNAUTHENTICATED
    assert await code_of(get(security.Security(token="x" * 40))) == grpc.StatusCode.UNAUTHENTICATED
    assert await code_of(get(served.node)) == grpc.StatusCode.PERMISSION_DENIED
    assert (served.refused("missing_token"), served.refused("bad_token"), served.refused("role")) == (1, 1, 1)


async def test_a_malformed_authorization_header_is_unauthenticated(served):
    async with grpc.aio.insecure_channel(served.address) as ch:
        stub = pb_grpc.NodeStub(ch)
        for value in ("Basic abc", "Bearer", f"bearer {served.operator.token}", served.operator.token):
            assert (
                await code_of(stub.GetPcp(pb.CpuRequest(cpu=0), metadata=[("authorization", value)], timeout=5))
                == grpc.StatusCode.UNAUTHENTICATED
            )
        twice = [("authorization", f"Bearer {served.operator.token}")] * 2
        assert (
            await code_of(stub.GetPcp(pb.CpuRequest(cpu=0), metadata=twice, timeout=5))
            == grpc.StatusCode.UNAUTHENTICATED
        )


async def test_a_method_without_a_row_is_refused_even_to_the_operator(served, monkeypatch):
    """Fail closed: a method missing from ACCESS gets PERMISSION_DENIED, whoever calls."""
    monkeypatch.delitem(ACCESS, "/pcpsim.v1.Node/GetPcp")
    stub = pb_grpc.NodeStub(security.aio_channel(served.address, served.operator))
    assert await code_of(stub.GetPcp(pb.CpuRequest(cpu=0), timeout=5)) == grpc.StatusCode.PERMISSION_DENIED
    assert served.refused("unlisted") == 1


async def test_undecodable_bytes_are_invalid_argument_and_oversized_ones_resource_exhausted(served):
    ch = security.aio_channel(served.address, served.operator)
    raw = ch.unary_unary("/pcpsim.v1.Node/GetPcp")  # identity serializers: bytes as given
    assert await code_of(raw(b"\xff\xff\xff", timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT
    assert served.refused("undecodable") == 1
    assert await code_of(raw(b"\x08" + b"\x80" * 3000, timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT
    big = (
        pb.CpuRequest(cpu=0).SerializeToString()
        + b"\x12"
        + _varint(security.MAX_REQUEST_BYTES)
        + b"\0" * security.MAX_REQUEST_BYTES
    )
    assert await code_of(raw(big, timeout=5)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Unknown fields are tolerated (proto3), the request is served.
    assert await code_of(raw(b"\x08\x00\x9a\x05\x01x", timeout=5)) == grpc.StatusCode.OK
    call = security.stream_opener(ch.stream_stream("/pcpsim.v1.Node/PcpControl"), served.operator)()
    await call.write(b"\xff\xff")
    assert await code_of(call.read()) == grpc.StatusCode.INVALID_ARGUMENT


def _varint(n: int) -> bytes:
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


async def test_health_checks_need_no_token(served):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from node.shared.health import Health

    await served.server.stop(None)
    server = grpc.aio.server(interceptors=[security.AuthInterceptor(served.operator, CollectorRegistry())])
    health = await Health.add_to(server, "pcpsim.v1.Node")
    await health.serving()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            reply = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await server.stop(None)


def test_metrics_endpoints_are_read_only():
    """A process's /metrics (node.shared.exposition) answers GET only: writes get 405, and every path
    serves the registry, never a file."""
    import urllib.error
    import urllib.request

    from prometheus_client import Counter

    from node.shared import exposition

    registry = CollectorRegistry()
    Counter("pcpsim_probe_total", "probe", registry=registry).inc()
    endpoint = exposition.serve(("127.0.0.1", 0), registry)
    try:
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            req = urllib.request.Request(f"http://{endpoint.address}/metrics", method=method, data=b"x=1")
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(req, timeout=5)
            assert err.value.code == 405
        for path in ("/metrics", "/../../etc/passwd", "/"):
            with urllib.request.urlopen(f"http://{endpoint.address}{path}", timeout=5) as r:
                body = r.read().decode()
            assert "pcpsim_probe_total 1.0" in body and "root:" not in body
    finally:
        endpoint.close()


def test_a_security_shows_no_secret_when_printed():
    sec = security.Security(token=SECRET, accept=((NODE, b"d" * 32),), keys=((NODE, b"k" * 20),))
    assert SECRET not in repr(sec) and "kkkk" not in repr(sec) and SECRET not in str(sec)
    assert SECRET not in repr(interceptors.SyncToken(SECRET)) + repr(interceptors.AioUnaryToken(SECRET))
