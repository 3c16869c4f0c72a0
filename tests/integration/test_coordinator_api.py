"""The coordinator's gRPC API against a real cluster: input validation, idempotent
transfers, ownership checks, membership errors.

Bad-input tests run on a shared cluster whose CPUs are all parked (`paused`), so zone free
pages and every pcp count are frozen: each test proves the exact status code, that the
frozen numbers did not move, and that the stop-the-world audit still passes.
"""

import contextlib
import os
import select
import signal
import socket
import subprocess
import time

import grpc
import pytest

from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from tests.integration.conftest import RPC_TIMEOUT, assert_audit_ok, python_module, rpc_code, transfer_id, wait_until
from tests.procs import stop_process

IDLE_CPU = 2  # the shared cluster's idle CPU: it never touches the zone by itself
INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


def rmqueue(h, **fields) -> pb.RmqueueReply:
    req = dict(
        cpu=IDLE_CPU,
        order=0,
        migratetype=1,
        count=4,
        transfer_id=transfer_id(),
        incarnation=h.incarnation(fields.get("cpu", IDLE_CPU)),
    )
    req.update(fields)
    return h.coord.Rmqueue(pb.RmqueueRequest(**req), timeout=RPC_TIMEOUT)


def page_list(pages) -> pb.PageList:
    return pb.PageList(
        pfn=[p for p, _, _ in pages], order=[o for _, o, _ in pages], migratetype=[m for _, _, m in pages]
    )


def free_request(h, cpu, pages, **fields) -> pb.FreePagesRequest:
    """A FreePages request as `cpu`'s live incarnation (a CPU the cluster lacks has none)."""
    req = dict(
        cpu=cpu,
        pages=pages if isinstance(pages, pb.PageList) else page_list(pages),
        transfer_id=transfer_id(),
        incarnation=h.incarnation(cpu) if cpu in h.nodes else "",
    )
    req.update(fields)
    return pb.FreePagesRequest(**req)


def free(h, cpu, pages, tid=None) -> pb.FreePagesReply:
    return h.coord.FreePages(free_request(h, cpu, pages, transfer_id=tid or transfer_id()), timeout=RPC_TIMEOUT)


def take_pages(h, order=0, count=4, migratetype=1) -> list:
    """Rmqueue on behalf of the idle CPU: blocks the zone then records as the idle CPU's."""
    reply = rmqueue(h, order=order, count=count, migratetype=migratetype)
    assert reply.watermark_ok and len(reply.pfn) == count
    return [(pfn, order, migratetype) for pfn in reply.pfn]


# ------------------------------------------------------------------ Rmqueue
@pytest.mark.parametrize(
    "field,value",
    [
        ("cpu", 3),
        ("cpu", 1 << 20),
        ("order", 11),
        ("order", 1000),
        ("migratetype", 5),
        ("count", 0),
        ("count", 4097),
        ("transfer_id", ""),
    ],
)
def test_rmqueue_rejects_bad_input_and_changes_nothing(paused, field, value):
    """A Rmqueue with one bad field (cpu outside 0..2, order > 10, migratetype > 4, count
    outside 1..4096, no transfer_id) gets INVALID_ARGUMENT and takes no page from the zone."""
    before = paused.frozen()
    code = rpc_code(
        paused.coord.Rmqueue,
        pb.RmqueueRequest(
            **{**dict(cpu=IDLE_CPU, order=0, migratetype=1, count=4, transfer_id=transfer_id()), field: value}
        ),
    )
    assert code == INVALID
    assert paused.frozen() == before
    assert_audit_ok(paused)


def test_rmqueue_limits_are_inclusive(paused):
    """The edges of every range are accepted: count 4096, order 10, cpu nr_cpus-1, migratetype 4
    (MIGRATE_ISOLATE: valid, though no free list of that type has pages to give, so it is
    answered with none); each takes exactly what it reports and gives it back."""
    before = paused.free_pages()
    got = take_pages(paused, order=0, count=4096)
    got += take_pages(paused, order=10, count=1)
    isolate = rmqueue(paused, order=0, count=1, migratetype=4)
    assert isolate.watermark_ok and len(isolate.pfn) <= 1
    got += [(pfn, 0, 4) for pfn in isolate.pfn]
    assert paused.free_pages() == before - 4096 - 1024 - len(isolate.pfn)
    free(paused, IDLE_CPU, got)
    assert paused.free_pages() == before
    assert_audit_ok(paused)


def test_rmqueue_then_free_is_idempotent_per_transfer_id(paused):
    """Positive control: a Rmqueue takes count << order pages; retrying its transfer_id returns
    the same pfns without taking more; a FreePages gives them back and its retry is answered
    the same without freeing twice. The audit is ok afterwards."""
    free0, counts0 = paused.frozen()
    tid = transfer_id()
    first = rmqueue(paused, order=2, count=3, transfer_id=tid)
    assert first.watermark_ok and len(first.pfn) == 3 and len(set(first.pfn)) == 3
    assert first.free_pages == free0 - 12 == paused.free_pages()
    retry = rmqueue(paused, order=2, count=3, transfer_id=tid)
    assert list(retry.pfn) == list(first.pfn) and retry.free_pages == first.free_pages
    assert paused.free_pages() == free0 - 12

    pages = [(pfn, 2, 1) for pfn in first.pfn]
    ftid = transfer_id()
    freed = free(paused, IDLE_CPU, pages, ftid)
    assert freed.free_pages == free0 == paused.free_pages()
    again = free(paused, IDLE_CPU, pages, ftid)
    assert again.free_pages == freed.free_pages
    assert paused.frozen() == (free0, counts0)
    assert_audit_ok(paused)


def test_rejected_transfer_id_is_not_remembered(paused):
    """A request refused as invalid does not consume its transfer_id: a valid request with the
    same id afterwards is applied."""
    tid = transfer_id()
    before = paused.free_pages()
    assert (
        rpc_code(
            paused.coord.Rmqueue,
            pb.RmqueueRequest(
                cpu=IDLE_CPU, order=0, migratetype=1, count=0, transfer_id=tid, incarnation=paused.incarnation(IDLE_CPU)
            ),
        )
        == INVALID
    )
    reply = rmqueue(paused, count=2, transfer_id=tid)
    assert len(reply.pfn) == 2 and paused.free_pages() == before - 2
    free(paused, IDLE_CPU, [(p, 0, 1) for p in reply.pfn])
    assert paused.free_pages() == before
    assert_audit_ok(paused)


def test_audit_detects_pages_the_zone_gave_a_cpu_that_does_not_hold_them(paused):
    """The audit can fail: pages the zone records as the idle CPU's (taken by this test, not by
    the CPU) make it report an ownership error; once freed it is ok again."""
    pages = take_pages(paused, count=3)
    report = paused.audit()
    assert not report.ok
    assert any(f"cpu{IDLE_CPU}: zone records 3 blocks the CPU does not hold" in e for e in report.errors), list(
        report.errors
    )
    # The audit left the CPUs that were paused before it paused.
    assert all(paused.set_paused(True).values())
    free(paused, IDLE_CPU, pages)
    assert_audit_ok(paused)


# ---------------------------------------------------------------- FreePages
def _foreign_page(h):
    """A page on cpu0's pcp lists (the zone records it as cpu0's)."""
    snap = h.snapshot(0)
    assert snap.pcp_pages.pfn, "cpu0 has no pcp pages"
    return (snap.pcp_pages.pfn[0], snap.pcp_pages.order[0], snap.pcp_pages.migratetype[0])


BAD_FREES = {
    # name: (build(h, mine) -> FreePagesRequest, expected code)
    "arrays_differ_in_length": (
        lambda h, mine: free_request(
            h, IDLE_CPU, pb.PageList(pfn=[mine[0][0], mine[1][0]], order=[0], migratetype=[1, 1])
        ),
        INVALID,
    ),
    "duplicate_pfn": (lambda h, mine: free_request(h, IDLE_CPU, [mine[0], mine[0]]), INVALID),
    "empty_list": (lambda h, mine: free_request(h, IDLE_CPU, pb.PageList()), INVALID),
    "no_transfer_id": (lambda h, mine: free_request(h, IDLE_CPU, mine, transfer_id=""), INVALID),
    "cpu_out_of_range": (lambda h, mine: free_request(h, 3, mine), INVALID),
    "order_out_of_range": (lambda h, mine: free_request(h, IDLE_CPU, [mine[0], (mine[1][0], 11, 1)]), INVALID),
    "migratetype_out_of_range": (lambda h, mine: free_request(h, IDLE_CPU, [(mine[0][0], 0, 5)]), INVALID),
    "page_held_by_another_cpu": (lambda h, mine: free_request(h, IDLE_CPU, [_foreign_page(h)]), PRECONDITION),
    "own_pages_as_another_cpu": (lambda h, mine: free_request(h, 0, mine), PRECONDITION),
    "wrong_order": (lambda h, mine: free_request(h, IDLE_CPU, [(mine[0][0], 1, 1)]), PRECONDITION),
    "held_page_mixed_with_foreign_page": (
        lambda h, mine: free_request(h, IDLE_CPU, [mine[0], mine[1], _foreign_page(h)]),
        PRECONDITION,
    ),
    # Fencing: the right pages, but not from the CPU's live incarnation.
    "stale_incarnation": (lambda h, mine: free_request(h, IDLE_CPU, mine, incarnation="0" * 16), PRECONDITION),
    "no_incarnation": (lambda h, mine: free_request(h, IDLE_CPU, mine, incarnation=""), PRECONDITION),
}


@pytest.mark.parametrize("case", sorted(BAD_FREES))
def test_free_pages_rejects_bad_input_and_changes_nothing(paused, case):
    """A FreePages that is malformed (INVALID_ARGUMENT) or names a page its CPU does not hold at
    that order (FAILED_PRECONDITION) is refused whole: zone free pages and pcp counts stay as
    they were, the caller's own pages stay held (a correct free of them still works), and the
    audit is ok."""
    mine = take_pages(paused, count=2)
    before = paused.frozen()
    build, expected = BAD_FREES[case]
    assert rpc_code(paused.coord.FreePages, build(paused, mine)) == expected
    assert paused.frozen() == before
    reply = free(paused, IDLE_CPU, mine)
    assert reply.free_pages == before[0] + 2
    assert_audit_ok(paused)


def test_free_of_a_page_already_free_is_refused(paused):
    """Freeing a page twice under different transfer ids: the second is FAILED_PRECONDITION
    (the zone records it as free) and the free count does not grow again."""
    mine = take_pages(paused, count=1)
    free(paused, IDLE_CPU, mine)
    before = paused.frozen()
    assert rpc_code(paused.coord.FreePages, free_request(paused, IDLE_CPU, mine)) == PRECONDITION
    assert paused.frozen() == before
    assert_audit_ok(paused)


# ------------------------------------------------------------ DrainAllPages
@pytest.mark.parametrize("strategy,trigger", [(7, 0), (9, 1), (1, 7), (2, 3)])
def test_drain_all_pages_rejects_unknown_enum_values(paused, strategy, trigger):
    """DrainAllPages with a strategy or trigger outside the known values is INVALID_ARGUMENT,
    drains nothing and records nothing in the drain history."""
    before = paused.frozen()
    history = len(paused.coord.GetDrainHistory(pb.DrainHistoryRequest(), timeout=RPC_TIMEOUT).drains)
    code = rpc_code(
        paused.coord.DrainAllPages, pb.DrainAllRequest(strategy=strategy, trigger=trigger, force_all_cpus=True)
    )
    assert code == INVALID
    assert paused.frozen() == before
    assert all(c > 0 for cpu, c in before[1].items() if cpu != IDLE_CPU)  # there was something to drain
    assert len(paused.coord.GetDrainHistory(pb.DrainHistoryRequest(), timeout=RPC_TIMEOUT).drains) == history
    assert_audit_ok(paused)


# --------------------------------------------------------------- membership
def _members(h):
    return [(n.cpu, n.address, n.role) for n in h.state().nodes]


@pytest.mark.parametrize(
    "cpu,address,role",
    [
        (3, "127.0.0.1:1", pb.ROLE_HOUSEKEEPING),
        (1 << 31, "127.0.0.1:1", pb.ROLE_HOUSEKEEPING),
        (0, "", pb.ROLE_HOUSEKEEPING),
        (0, "no-port-here", pb.ROLE_HOUSEKEEPING),
        (0, "127.0.0.1:1", pb.ROLE_UNSPECIFIED),
        (0, "127.0.0.1:1", 9),
    ],
)
def test_register_rejects_bad_input_and_changes_nothing(paused, cpu, address, role):
    """Register with a cpu outside 0..nr_cpus-1, an address that is not host:port or an
    unknown role is INVALID_ARGUMENT and leaves membership (every CPU's address and role) as
    it was; the real node keeps serving, so the audit still reaches it."""
    members = _members(paused)
    code = rpc_code(paused.coord.Register, pb.RegisterRequest(cpu=cpu, address=address, role=role))
    assert code == INVALID
    assert _members(paused) == members
    assert_audit_ok(paused)


def test_heartbeat_from_cpu_out_of_range_is_invalid(paused):
    """A heartbeat naming a CPU the cluster does not have is INVALID_ARGUMENT and adds no member."""
    members = _members(paused)
    assert rpc_code(paused.coord.Heartbeat, pb.HeartbeatRequest(cpu=3, pcp_count=5)) == INVALID
    assert _members(paused) == members


def test_an_audit_that_cannot_park_a_cpu_fails_cleanly_and_leaves_the_others_running(shared_cluster):
    """One CPU refuses to be parked: the audit answers UNAVAILABLE naming it (not UNKNOWN), and the
    CPUs it did park run again (a pause gathered without its failures left them held for good)."""
    h = shared_cluster
    h.nodes[1].SetFaults(
        pb.FaultsRequest(rules=[pb.FaultRule(direction=pb.DIRECTION_IN, method="SetRunState", peer=-1, fail=1.0)]),
        timeout=RPC_TIMEOUT,
    )
    try:
        with pytest.raises(grpc.RpcError) as info:
            h.audit()
    finally:
        h.nodes[1].SetFaults(pb.FaultsRequest(), timeout=RPC_TIMEOUT)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "could not park cpu 1" in info.value.details()
    wait_until(
        lambda: all(h.snapshot(cpu).running for cpu in h.nodes), 10.0, what="every CPU running after the failed audit"
    )
    assert_audit_ok(h)


@pytest.fixture
def lone_coordinator(tmp_path):
    """A coordinator process for 2 CPUs that no node joins; yields (stub, Popen)."""
    with coordinator_process(tmp_path, "--nodes", "2") as out:
        yield out


@contextlib.contextmanager
def coordinator_process(tmp_path, *args):
    log = open(tmp_path / "coordinator.log", "wb")
    proc = subprocess.Popen(
        python_module("coordinator", "--listen", "127.0.0.1:0", *args, "--parent-pid", str(os.getpid())),
        stdout=subprocess.PIPE,
        stderr=log,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        line = b""
        while not line.endswith(b"\n"):
            assert proc.poll() is None and time.monotonic() < deadline, "coordinator did not start"
            if select.select([proc.stdout], [], [], 0.5)[0]:
                line += os.read(proc.stdout.fileno(), 1)
        assert line.startswith(b"LISTENING ")
        with grpc.insecure_channel(line.split()[1].decode()) as channel:
            yield pb_grpc.CoordinatorStub(channel), proc
    finally:
        stop_process(proc)
        proc.stdout.close()
        log.close()


def test_heartbeats_are_paced_to_the_coordinators_budget(tmp_path):
    """Every Register and Heartbeat reply gives the interval to beat at: the registered CPUs share
    --heartbeat-budget beats a second, and at most a quarter of the failure timeout passes between
    two beats (three may be lost before a node counts as down)."""
    with coordinator_process(tmp_path, "--nodes", "4", "--heartbeat-budget", "10", "--failure-timeout-ms", "1000") as (
        stub,
        _,
    ):
        intervals = []
        for cpu in range(3):
            reply = stub.Register(
                pb.RegisterRequest(cpu=cpu, address="127.0.0.1:1", role=pb.ROLE_IDLE), timeout=RPC_TIMEOUT
            )
            beat = stub.Heartbeat(pb.HeartbeatRequest(cpu=0, pcp_count=0), timeout=RPC_TIMEOUT)
            intervals.append((reply.heartbeat_interval_ms, beat.heartbeat_interval_ms))
        assert intervals == [(100, 100), (200, 200), (250, 250)]


def test_heartbeat_before_register_is_not_found(lone_coordinator):
    """A heartbeat from a valid CPU that has not registered is NOT_FOUND (what a node hears
    from a restarted coordinator) and does not make it a member; after it registers, its
    heartbeats are accepted, and only from its incarnation (FAILED_PRECONDITION otherwise)."""
    stub, _ = lone_coordinator
    code = rpc_code(stub.Heartbeat, pb.HeartbeatRequest(cpu=1, pcp_count=3))
    assert code == grpc.StatusCode.NOT_FOUND
    assert list(stub.GetState(pb.Empty(), timeout=RPC_TIMEOUT).nodes) == []
    reply = stub.Register(pb.RegisterRequest(cpu=1, address="127.0.0.1:1", role=pb.ROLE_IDLE), timeout=RPC_TIMEOUT)
    assert reply.nr_cpus == 2 and reply.batch > 0 and reply.high >= reply.batch
    stub.Heartbeat(pb.HeartbeatRequest(cpu=1, pcp_count=3), timeout=RPC_TIMEOUT)
    assert rpc_code(stub.Heartbeat, pb.HeartbeatRequest(cpu=1, pcp_count=4, incarnation="x")) == PRECONDITION
    assert rpc_code(stub.Heartbeat, pb.HeartbeatRequest(cpu=0, pcp_count=3)) == grpc.StatusCode.NOT_FOUND
    nodes = stub.GetState(pb.Empty(), timeout=RPC_TIMEOUT).nodes
    assert [(n.cpu, n.pcp_count) for n in nodes] == [(1, 3)]


@pytest.mark.parametrize("strategy", [pb.STRATEGY_REMOTE, pb.STRATEGY_WORKQUEUE])
def test_drain_of_an_unreachable_node_fails_instead_of_hanging(lone_coordinator, strategy):
    """A drain that must reach a registered CPU whose address refuses connections ends with
    status FAILED and that CPU's error recorded (the call returns; nothing wedges the drain
    mutex: a second drain afterwards is answered too)."""
    stub, _ = lone_coordinator
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        address = f"127.0.0.1:{sock.getsockname()[1]}"
        stub.Register(pb.RegisterRequest(cpu=0, address=address, role=pb.ROLE_HOUSEKEEPING), timeout=RPC_TIMEOUT)

        # cpu1 never registers: drains wait for the recovery window (twice the dead timeout) to
        # end; cpu0's heartbeats meanwhile keep it from being declared dead.
        def recovered():
            stub.Heartbeat(pb.HeartbeatRequest(cpu=0, pcp_count=10), timeout=RPC_TIMEOUT)
            return not stub.GetState(pb.Empty(), timeout=RPC_TIMEOUT).recovering

        wait_until(recovered, 30.0, what="the end of recovery")
        for _ in range(2):
            stub.Heartbeat(pb.HeartbeatRequest(cpu=0, pcp_count=10), timeout=RPC_TIMEOUT)
            reply = stub.DrainAllPages(pb.DrainAllRequest(strategy=strategy, force_all_cpus=True), timeout=30)
            assert reply.status == pb.DrainAllReply.FAILED
            assert list(reply.cpus_marked) == [0]
            assert [(c.cpu, c.ok) for c in reply.cpus] == [(0, False)] and reply.cpus[0].error
    history = stub.GetDrainHistory(pb.DrainHistoryRequest(), timeout=RPC_TIMEOUT).drains
    assert [d.status for d in history] == [pb.DrainAllReply.FAILED] * 2


def test_coordinator_exits_cleanly_on_sigterm(lone_coordinator):
    """SIGTERM stops a coordinator with exit status 0 and its port stops accepting connections."""
    stub, proc = lone_coordinator
    stub.GetState(pb.Empty(), timeout=RPC_TIMEOUT)
    proc.send_signal(signal.SIGTERM)
    wait_until(lambda: proc.poll() is not None, 10, what="coordinator exit")
    assert proc.returncode == 0
