"""Hostile input against every RPC of both services, on a real running cluster.

Hypothesis draws requests for every method of the Coordinator and Node services: typed
messages with extreme and adversarial values (out-of-range and huge numbers, unknown and
negative enums, empty, mismatched and oversized page lists, duplicate PFNs, PFNs nobody
gave the caller, bad addresses, long strings), and raw bytes (random, or hand-encoded
fields with the wrong wire type, 10-byte negative varints, truncations) sent through a
generic channel with identity serializers. All of it goes through the operator's
authenticated channel, so the servicers themselves are what is attacked.

Each example must get a precise status: bytes that are no valid message get
INVALID_ARGUMENT; a decodable request gets OK or one of INVALID_ARGUMENT,
FAILED_PRECONDITION, NOT_FOUND (never UNKNOWN or INTERNAL, which mean a servicer raised,
nor a timeout). Every process must still run after every example, and the stop-the-world
audit must balance at the end (the Audit RPC is itself fuzzed, and every audit it
answers must balance too).

What a request legitimately does is undone at once so the audit can balance: pages a
Rmqueue handed out are freed back, a granted pcp lock is released with its pages put
back, queued work is flushed, a paused CPU resumed, injected faults healed. Requests that
the operator may legitimately make and that would wreck the cluster are not sent: a valid
Register for a live CPU (it replaces that CPU's process), a FreePages naming a running
CPU's pages, and a SetFaults that SIGSTOPs the coordinator (the chaos nemesis resumes it).

The default run draws BOUNDED_EXAMPLES per service; `pytest -m hostile_full` draws
FULL_EXAMPLES (10,000) per service. Draws follow PCPSIM_HOSTILE_SEED (0 unless set).
"""

import collections
import os
import signal

import grpc
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, assume, given, seed, settings
from hypothesis import strategies as st

from node.api import validate
from node.api.v1 import pcpsim_pb2 as pb
from node.mm.constants import MAX_ORDER, MIGRATE_TYPES
from node.shared.config import split_host_port
from tests.integration.conftest import HK_HK_IDLE, assert_audit_ok, running_cluster, wait_until

BOUNDED_EXAMPLES = int(os.environ.get("PCPSIM_HOSTILE_EXAMPLES", "120"))
# Fixed by default so a CI failure can be run again; set it to explore other draws.
SEED = int(os.environ.get("PCPSIM_HOSTILE_SEED", "0"))
FULL_EXAMPLES = 10_000
NR_CPUS = len(HK_HK_IDLE)
IDLE_CPU = 2
CALL_TIMEOUT = 30.0  # generous: a hang is a failure, but a loaded machine is slow

OK = grpc.StatusCode.OK
PRECISE = {OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND}
PRECISE_NAMES = {"", "INVALID_ARGUMENT", "FAILED_PRECONDITION", "NOT_FOUND"}  # a stream reply's `code`


# ------------------------------------------------------------------ strategies
U32_EDGES = [0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 63, 64, 4096, 4097, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1]
ZONE = 1 << 20  # the coordinator's ZONE_START_PFN; the default zone spans 262144 pages
U64_EDGES = [0, 1, ZONE - 1, ZONE, ZONE + 1, ZONE + 262143, ZONE + 262144, 2**63, 2**64 - 1]

u32 = st.one_of(st.sampled_from(U32_EDGES), st.integers(0, 2**32 - 1))
u64 = st.one_of(st.sampled_from(U64_EDGES), st.integers(ZONE, ZONE + 262143), st.integers(0, 2**64 - 1))
# Valid values often enough that requests get past the first check and reach the state checks.
cpu = st.one_of(st.integers(0, NR_CPUS - 1), st.integers(0, NR_CPUS - 1), st.integers(0, NR_CPUS), u32)
small = st.one_of(st.integers(0, 16), u32)
order = st.one_of(st.integers(0, MAX_ORDER - 1), st.integers(0, 3), small)
migratetype = st.one_of(st.integers(0, MIGRATE_TYPES - 1), st.integers(0, 2), small)
count = st.one_of(st.integers(1, 64), small)
enum = st.one_of(st.integers(-2, 6), st.integers(-(2**31), 2**31 - 1))
text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            ":",
            "127.0.0.1:0",
            "127.0.0.1:1",
            "[::1]:80",
            "::1:80",
            "host:99999",
            "h:-1",
            "x" * 300 + ":1",
            "a b:1",
            "\x00:1",
            "é:1",
        ]
    ),
    st.text(min_size=200, max_size=400),
)
# A zone request or heartbeat names the sender's incarnation (fencing); LIVE stands for the
# CPU's live one, looked up when the request is sent.
LIVE = "<live incarnation>"
incarnation = st.one_of(st.just(LIVE), st.just(LIVE), text)
transfer = st.one_of(
    st.text(max_size=20), st.text(min_size=validate.MAX_TRANSFER_ID - 2, max_size=validate.MAX_TRANSFER_ID + 2)
)


@st.composite
def page_lists(draw, max_size: int = 24):
    """Well-formed lists of zone pages (which nobody gave the caller), coherent lists of any
    values with some duplicates, or three arrays of unrelated lengths."""
    kind = draw(st.integers(0, 2))
    if kind == 0:
        pages = draw(
            st.lists(
                st.tuples(
                    st.integers(ZONE, ZONE + 262143), st.integers(0, MAX_ORDER - 1), st.integers(0, MIGRATE_TYPES - 1)
                ),
                min_size=1,
                max_size=8,
                unique_by=lambda p: p[0],
            )
        )
        return pb.PageList(
            pfn=[p for p, _, _ in pages], order=[o for _, o, _ in pages], migratetype=[m for _, _, m in pages]
        )
    if kind == 1:
        pages = draw(st.lists(st.tuples(u64, order, migratetype), max_size=max_size))
        if pages and draw(st.booleans()):
            pages.append(draw(st.sampled_from(pages)))  # a pfn twice
        return pb.PageList(
            pfn=[p for p, _, _ in pages], order=[o for _, o, _ in pages], migratetype=[m for _, _, m in pages]
        )
    return pb.PageList(
        pfn=draw(st.lists(u64, max_size=max_size)),
        order=draw(st.lists(small, max_size=max_size)),
        migratetype=draw(st.lists(small, max_size=max_size)),
    )


def rmqueue_requests():
    return st.builds(
        pb.RmqueueRequest,
        cpu=cpu,
        order=order,
        migratetype=migratetype,
        count=count,
        transfer_id=transfer,
        incarnation=incarnation,
    )


def free_requests():
    # FreePages as a running CPU could free pages that CPU holds (see the module docstring):
    # only the idle CPU, which holds nothing but what this fuzzer took and gave back, or a bad cpu.
    return st.builds(
        pb.FreePagesRequest,
        cpu=st.one_of(st.just(IDLE_CPU), st.integers(NR_CPUS, 2**32 - 1)),
        pages=page_lists(),
        transfer_id=transfer,
        incarnation=incarnation,
    )


COORDINATOR = {
    "Register": st.builds(
        pb.RegisterRequest,
        cpu=cpu,
        address=text,
        role=enum,
        incarnation=text,
        metrics_address=text,
        resume=st.booleans(),
        holdings=page_lists(),
    ),
    "Heartbeat": st.builds(pb.HeartbeatRequest, cpu=cpu, pcp_count=u32, incarnation=incarnation),
    "Rmqueue": rmqueue_requests(),
    "FreePages": free_requests(),
    "ZoneStream": st.lists(
        st.one_of(
            st.builds(pb.ZoneRequest, rmqueue=rmqueue_requests()),
            st.builds(pb.ZoneRequest, free=free_requests()),
            st.just(pb.ZoneRequest()),
        ),
        min_size=1,
        max_size=4,
    ),
    "DrainAllPages": st.builds(pb.DrainAllRequest, strategy=enum, force_all_cpus=st.booleans(), trigger=enum),
    "GetState": st.just(pb.Empty()),
    "GetDrainHistory": st.builds(pb.DrainHistoryRequest, reset=st.booleans()),
    "Audit": st.just(pb.Empty()),
    # #8's ranges: mostly refused (misaligned, outside the zone, sizes not a pageblock multiple);
    # a valid one really takes its range, which the audit then counts under its owner.
    "AllocContigRange": st.builds(
        pb.ContigRangeRequest, start_pfn=u64, nr_pages=st.one_of(st.just(512), u32), timeout_ms=st.integers(1, 200)
    ),
    "OfflinePages": st.builds(
        pb.ContigRangeRequest, start_pfn=u64, nr_pages=st.one_of(st.just(512), u32), timeout_ms=st.integers(1, 200)
    ),
    "ReleaseRange": st.builds(pb.ReleaseRangeRequest, start_pfn=u64, nr_pages=u32),
    # Offlining a real CPU would park it for the rest of the shared cluster's tests: onlining an
    # online CPU (refused) and CPUs out of range only.
    "SetCpuOnline": st.one_of(
        st.builds(pb.CpuOnlineRequest, cpu=cpu, online=st.just(True)),
        st.builds(pb.CpuOnlineRequest, cpu=st.integers(NR_CPUS, 2**32 - 1), online=st.booleans()),
    ),
    "SetFaults": st.builds(
        pb.FaultsRequest,
        rules=st.lists(
            st.builds(
                pb.FaultRule,
                direction=enum,
                method=text,
                peer=st.one_of(st.integers(-2, 4), enum),
                delay_ms=small,
                drop=st.floats(allow_nan=True),
                drop_reply=st.floats(allow_nan=True),
                fail=st.floats(allow_nan=True),
            ),
            max_size=3,
        ),
        cost_factor=st.floats(allow_nan=True),
        stop_mid_drain=st.booleans(),
        seed=u64,
    ),
}
NODE = {
    "GetPcp": st.builds(pb.CpuRequest, cpu=cpu),
    "PcpLockDrain": st.builds(pb.PcpLockDrainRequest, cpu=cpu, lease_ms=st.one_of(st.integers(0, 3000), u32)),
    "PcpUnlock": st.builds(
        pb.PcpUnlockRequest, cpu=cpu, token=st.one_of(st.integers(0, 100), u64), commit=st.booleans()
    ),
    "PcpControl": st.lists(
        st.one_of(
            st.builds(
                pb.PcpControlRequest,
                lock_drain=st.builds(pb.PcpLockDrainRequest, cpu=cpu, lease_ms=st.integers(0, 3000)),
            ),
            st.builds(
                pb.PcpControlRequest, unlock=st.builds(pb.PcpUnlockRequest, cpu=cpu, token=u64, commit=st.booleans())
            ),
            st.just(pb.PcpControlRequest()),
        ),
        min_size=1,
        max_size=4,
    ),
    "QueueWork": st.builds(pb.QueueWorkRequest, cpu=cpu, kind=enum),
    "FlushWork": st.builds(pb.FlushWorkRequest, cpu=cpu, work_id=u64, timeout_ms=st.one_of(st.integers(0, 200), u32)),
    "SetRunState": st.builds(pb.RunStateRequest, cpu=cpu, paused=st.booleans()),
    "Snapshot": st.builds(pb.CpuRequest, cpu=cpu),
    "GetStats": st.builds(pb.StatsRequest, cpu=cpu, reset=st.booleans()),
    "SetFaults": COORDINATOR["SetFaults"],
}


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # a negative number goes out as its 10-byte two's complement
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


@st.composite
def wire_garbage(draw) -> bytes:
    """Hand-encoded fields 1..9: any wire type for any field, negative and overlong varints,
    lengths that overrun, groups that never close, and truncation."""
    out = b""
    for _ in range(draw(st.integers(1, 6))):
        field, wire = draw(st.integers(0, 9)), draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7]))
        out += _varint(field << 3 | wire)
        if wire == 0:
            out += _varint(draw(st.one_of(st.integers(-(2**63), -1), st.integers(0, 2**64 - 1))))
        elif wire == 1:
            out += draw(st.binary(min_size=8, max_size=8))
        elif wire == 2:
            body = draw(st.binary(max_size=24))
            out += _varint(len(body) + draw(st.sampled_from([0, 0, 0, 1, 1000]))) + body
        elif wire == 5:
            out += draw(st.binary(min_size=4, max_size=4))
    if draw(st.booleans()):
        out = out[: draw(st.integers(0, len(out)))]
    return out


raw_bytes = st.one_of(st.binary(max_size=64), wire_garbage())


# ------------------------------------------------------------------ the fuzzer
class Fuzzer:
    """Sends one drawn call, checks its status, undoes what it legitimately did."""

    def __init__(self, h):
        self.h = h
        self.ch = {"Coordinator": h.cluster.channel(h.cluster.coordinator_address)}
        for c, address in h.addresses.items():
            self.ch[c] = h.cluster.channel(address)
        self.codes = collections.Counter()
        self.incarnations = {n.cpu: n.incarnation for n in h.state().nodes}
        self.examples = 0
        self.audits = 0

    def close(self):
        for ch in self.ch.values():
            ch.close()

    def method(self, service: str, name: str):
        return pb.DESCRIPTOR.services_by_name[service].methods_by_name[name]

    def message(self, service, name, output=False):
        m = self.method(service, name)
        return getattr(pb, (m.output_type if output else m.input_type).name)

    # ---------------------------------------------------------------- one example
    def run(self, service: str, target, name: str, requests: list):
        """`requests`: a message or raw bytes (one for a unary method, a list for a stream)."""
        cls = self.message(service, name)
        raw, decoded = [], []
        for r in requests:
            data = r if isinstance(r, bytes) else self.live(r).SerializeToString()
            raw.append(data)
            try:
                decoded.append(cls.FromString(data))
            except DecodeError:
                decoded.append(None)
        # Stop before sending the first undecodable message of a stream: what follows is never read.
        first_bad = next((i for i, d in enumerate(decoded) if d is None), None)
        for d in decoded[:first_bad]:
            assume(self.safe(name, d))
        self.examples += 1
        channel = self.ch["Coordinator" if service == "Coordinator" else target]
        path = f"/{pb.DESCRIPTOR.services_by_name[service].full_name}/{name}"
        if self.method(service, name).client_streaming:
            code, replies = self.stream(channel, path, raw[: None if first_bad is None else first_bad + 1])
            sent = decoded[: len(replies)]
            for d, reply in zip(sent, replies, strict=False):
                r = self.message(service, name, output=True).FromString(reply)
                assert r.code in PRECISE_NAMES, (name, d, r)
                self.undo_stream(service, target, d, r)
            expected = {OK} if first_bad is None else {grpc.StatusCode.INVALID_ARGUMENT}
        else:
            code, reply = self.unary(channel, path, raw[0])
            if code == OK:
                self.undo(service, target, name, decoded[0], self.message(service, name, True).FromString(reply))
            expected = PRECISE if decoded[0] is not None else {grpc.StatusCode.INVALID_ARGUMENT}
        self.codes[f"{service}/{name} {code.name}"] += 1
        assert code in expected, (service, name, code, decoded)
        self.check_alive()

    def live(self, request):
        """A copy of `request` with LIVE replaced by the named CPU's live incarnation ("" for a
        CPU the cluster lacks), in the request or in the operation a stream request carries."""
        request = type(request).FromString(request.SerializeToString())
        msgs = [request]
        if "op" in request.DESCRIPTOR.oneofs_by_name and request.WhichOneof("op"):
            msgs.append(getattr(request, request.WhichOneof("op")))
        for msg in msgs:
            if "incarnation" in msg.DESCRIPTOR.fields_by_name and msg.incarnation == LIVE:
                msg.incarnation = self.incarnations.get(msg.cpu, "")
        return request

    def unary(self, channel, path, data):
        try:
            return OK, channel.unary_unary(path)(data, timeout=CALL_TIMEOUT)
        except grpc.RpcError as err:
            return err.code(), None

    def stream(self, channel, path, datas):
        call = channel.stream_stream(path)(iter(datas), timeout=CALL_TIMEOUT)
        replies = []
        try:
            for reply in call:
                replies.append(reply)
        except grpc.RpcError as err:
            return err.code(), replies
        return OK, replies

    def check_alive(self):
        for name, proc in self.h.cluster.procs.items():
            assert proc.poll() is None, f"{name} died with {proc.returncode}"

    # ---------------------------------------------------------------- what is not sent
    def safe(self, name: str, req) -> bool:
        if name == "Register":
            return not self.would_register(req)
        if name == "FreePages":
            return req.cpu != 0 and req.cpu != 1
        if name == "ZoneStream":
            return req.WhichOneof("op") != "free" or self.safe("FreePages", req.free)
        if name == "SetFaults":  # the coordinator would SIGSTOP itself mid-drain, for the nemesis to resume
            return not req.stop_mid_drain
        return True

    def would_register(self, req) -> bool:
        """Whether the coordinator would accept this registration (it must refuse every one sent)."""
        if req.cpu >= NR_CPUS or req.role not in pb.Role.values() or req.role == pb.ROLE_UNSPECIFIED:
            return False
        for address, required in ((req.address, True), (req.metrics_address, False)):
            if not address and not required:
                continue
            try:
                if len(address) > 255 or split_host_port(address)[1] == 0:
                    return False
            except ValueError:
                return False
        return len(req.incarnation) <= 255

    # ---------------------------------------------------------------- undo
    def undo(self, service, target, name, req, reply):
        h = self.h
        if name == "Rmqueue":
            # Pages in a reply are always new: the zone answers a reused id with its first reply
            # only while it is the CPU's last transfer, and the free_back below replaces it at once,
            # so only an empty first reply is ever replayed. (A replayed reply with pages would make
            # free_back fail loudly, not lose pages.)
            if reply.pfn:
                self.free_back(req.cpu, req.incarnation, req.order, req.migratetype, reply.pfn)
        elif name == "PcpLockDrain" and reply.token:
            try:
                h.nodes[target].PcpUnlock(
                    pb.PcpUnlockRequest(cpu=req.cpu, token=reply.token, commit=False), timeout=CALL_TIMEOUT
                )
            except grpc.RpcError as err:  # a short lease may have run out: the node put the pages back
                assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "expired" in err.details(), err
        elif name == "QueueWork":
            done = h.nodes[target].FlushWork(
                pb.FlushWorkRequest(cpu=req.cpu, work_id=reply.work_id, timeout_ms=20_000), timeout=CALL_TIMEOUT
            )
            assert done.done
        elif name == "SetRunState" and req.paused:
            h.nodes[target].SetRunState(pb.RunStateRequest(cpu=req.cpu, paused=False), timeout=CALL_TIMEOUT)
        elif name == "SetFaults":  # heal at once (SetFaults itself is exempt from faults)
            stub = h.coord if service == "Coordinator" else h.nodes[target]
            stub.SetFaults(pb.FaultsRequest(), timeout=CALL_TIMEOUT)
        elif name == "Audit":
            self.audits += 1
            assert reply.ok, (reply.lost, reply.duplicated, list(reply.errors))

    def undo_stream(self, service, target, req, reply):
        if reply.code:
            return
        op = req.WhichOneof("op")
        if op == "rmqueue":
            self.undo(service, target, "Rmqueue", req.rmqueue, reply.rmqueue)
        elif op == "lock_drain":
            self.undo(service, target, "PcpLockDrain", req.lock_drain, reply.lock_drain)

    def free_back(self, cpu, incarnation, order, migratetype, pfns):
        self.h.coord.FreePages(
            pb.FreePagesRequest(
                cpu=cpu,
                incarnation=incarnation,
                transfer_id=f"undo-{os.urandom(8).hex()}",
                pages=pb.PageList(pfn=pfns, order=[order] * len(pfns), migratetype=[migratetype] * len(pfns)),
            ),
            timeout=CALL_TIMEOUT,
        )


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory):
    with running_cluster(tmp_path_factory.mktemp("hostile"), HK_HK_IDLE) as h:
        h.wait_pages([0, 1])
        f = Fuzzer(h)
        try:
            yield f
        finally:
            f.close()


def calls(table: dict, service: str):
    """(target, method, [message or bytes, ...]) for every method of `service`."""

    def one(name):
        typed = table[name]
        streaming = pb.DESCRIPTOR.services_by_name[service].methods_by_name[name].client_streaming
        if streaming:  # `typed` draws a list of messages for a stream
            element = typed.flatmap(st.sampled_from)
            body = st.one_of(typed, st.lists(st.one_of(element, raw_bytes), min_size=1, max_size=4))
        else:
            body = st.one_of(typed, typed, raw_bytes).map(lambda r: [r])
        return st.tuples(st.integers(0, NR_CPUS - 1), st.just(name), body)

    return st.one_of(*(one(name) for name in sorted(table)))


def fuzz(f: Fuzzer, service: str, table: dict, examples: int):
    before = f.examples
    f.codes.clear()

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    @seed(SEED)
    @given(calls(table, service))
    def run(call):
        target, name, requests = call
        f.run(service, target, name, requests)

    run()
    f.check_alive()
    assert_audit_ok(f.h)
    ran = f.examples - before
    print(
        f"\n{service}: {ran} examples (PCPSIM_HOSTILE_SEED={SEED}), {f.audits} audits answered; status codes: "
        + ", ".join(f"{k}={v}" for k, v in sorted(f.codes.items()))
    )
    return ran


def test_the_fuzzer_covers_every_method_of_both_services():
    for service, table in (("Coordinator", COORDINATOR), ("Node", NODE)):
        assert set(table) == {m.name for m in pb.DESCRIPTOR.services_by_name[service].methods}, service


@pytest.mark.parametrize("service,table", [("Coordinator", COORDINATOR), ("Node", NODE)])
def test_hostile_input_gets_precise_statuses_and_the_audit_balances(fuzzer, service, table):
    ran = fuzz(fuzzer, service, table, BOUNDED_EXAMPLES)
    assert ran >= BOUNDED_EXAMPLES


@pytest.mark.hostile_full
@pytest.mark.parametrize("service,table", [("Coordinator", COORDINATOR), ("Node", NODE)])
def test_ten_thousand_hostile_requests_per_service(fuzzer, service, table):
    ran = fuzz(fuzzer, service, table, FULL_EXAMPLES)
    assert ran >= FULL_EXAMPLES


# ------------------------------------------------------------------ adversarial scenarios
def pages_of(snapshot_list) -> list[tuple[int, int, int]]:
    return list(zip(snapshot_list.pfn, snapshot_list.order, snapshot_list.migratetype, strict=False))


def free_code(h, cpu, pages, tid=None, incarnation=None) -> grpc.StatusCode:
    """FreePages as `cpu` (its live incarnation unless given); OK or the failure."""
    if incarnation is None:
        incarnation = h.incarnation(cpu) if cpu in h.nodes else ""
    try:
        h.coord.FreePages(
            pb.FreePagesRequest(
                cpu=cpu,
                transfer_id=tid or f"t-{os.urandom(6).hex()}",
                pages=pb.PageList(
                    pfn=[p for p, _, _ in pages], order=[o for _, o, _ in pages], migratetype=[m for _, _, m in pages]
                ),
                incarnation=incarnation,
            ),
            timeout=CALL_TIMEOUT,
        )
    except grpc.RpcError as err:
        return err.code()
    return OK


def test_pages_the_caller_does_not_own_duplicates_and_double_returns_are_refused_whole(paused):
    """Freeing another CPU's pages, a list naming one pfn twice, and pages returned a second
    time (under a new transfer id) are refused, and nothing moves."""
    h = paused
    frozen = h.frozen()
    theirs = pages_of(h.snapshot(0).pcp_pages)[:4]
    assert theirs
    assert free_code(h, 1, theirs) == grpc.StatusCode.FAILED_PRECONDITION
    assert free_code(h, IDLE_CPU, theirs) == grpc.StatusCode.FAILED_PRECONDITION
    assert free_code(h, 0, theirs + theirs[:1]) == grpc.StatusCode.INVALID_ARGUMENT
    assert h.frozen() == frozen
    got = h.coord.Rmqueue(
        pb.RmqueueRequest(
            cpu=IDLE_CPU,
            order=0,
            migratetype=1,
            count=3,
            transfer_id=f"t-{os.urandom(6).hex()}",
            incarnation=h.incarnation(IDLE_CPU),
        ),
        timeout=CALL_TIMEOUT,
    )
    mine = [(p, 0, 1) for p in got.pfn]
    assert free_code(h, IDLE_CPU, mine, tid="returned-once") == OK
    assert free_code(h, IDLE_CPU, mine, tid="returned-once") == OK  # the same transfer retried: its first answer
    assert free_code(h, IDLE_CPU, mine) == grpc.StatusCode.FAILED_PRECONDITION  # a second return
    assert h.frozen() == frozen
    assert_audit_ok(h)


def test_oversized_page_lists_are_refused_by_count_and_by_bytes(paused):
    """One block over MAX_PAGES_PER_MESSAGE is INVALID_ARGUMENT; a message over the server's byte
    limit is RESOURCE_EXHAUSTED, before the servicer sees it; the cluster is unchanged."""
    h = paused
    frozen = h.frozen()
    n = validate.MAX_PAGES_PER_MESSAGE + 1
    over = [(ZONE + i, 0, 1) for i in range(n)]
    assert free_code(h, IDLE_CPU, over) == grpc.StatusCode.INVALID_ARGUMENT
    huge = [(2**64 - 1 - i, 0, 1) for i in range(2 * validate.MAX_PAGES_PER_MESSAGE)]
    assert free_code(h, IDLE_CPU, huge) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert h.frozen() == frozen
    assert_audit_ok(h)


def test_an_unlock_with_another_holders_token_changes_nothing(paused):
    """While one drainer holds cpu0's pcp lock, unlocks with any other token (a guess, the
    next one, zero) are refused; the holder's pages stay in flight and its own unlock works."""
    h = paused
    count = h.pcp(0).count
    grant = h.nodes[0].PcpLockDrain(pb.PcpLockDrainRequest(cpu=0, lease_ms=5000), timeout=CALL_TIMEOUT)
    try:
        for token, code in (
            (grant.token + 1, grpc.StatusCode.FAILED_PRECONDITION),
            (2**64 - 1, grpc.StatusCode.FAILED_PRECONDITION),
            (0, grpc.StatusCode.INVALID_ARGUMENT),
        ):
            with pytest.raises(grpc.RpcError) as err:
                h.nodes[0].PcpUnlock(pb.PcpUnlockRequest(cpu=0, token=token, commit=True), timeout=CALL_TIMEOUT)
            assert err.value.code() == code
        assert len(h.snapshot(0).inflight.pfn) == len(grant.pages.pfn)
    finally:
        h.nodes[0].PcpUnlock(pb.PcpUnlockRequest(cpu=0, token=grant.token, commit=False), timeout=CALL_TIMEOUT)
    assert h.pcp(0).count == count
    assert_audit_ok(h)


def test_work_nobody_flushes_cannot_grow_without_bound(make_cluster):
    """QueueWork past MAX_WORK_ITEMS forgets the oldest finished item (its FlushWork is then
    NOT_FOUND) rather than keeping every one; the node keeps serving."""
    from node.work_table import MAX_WORK_ITEMS

    h = make_cluster(["idle"])
    first = h.nodes[0].QueueWork(pb.QueueWorkRequest(cpu=0, kind=pb.WORK_DRAIN_LOCAL_PAGES), timeout=CALL_TIMEOUT)
    assert (
        h.nodes[0]
        .FlushWork(pb.FlushWorkRequest(cpu=0, work_id=first.work_id, timeout_ms=10_000), timeout=CALL_TIMEOUT)
        .done
    )
    ids = [
        h.nodes[0].QueueWork(pb.QueueWorkRequest(cpu=0, kind=pb.WORK_DRAIN_LOCAL_PAGES), timeout=CALL_TIMEOUT).work_id
        for _ in range(MAX_WORK_ITEMS + 5)
    ]
    with pytest.raises(grpc.RpcError) as err:
        h.nodes[0].FlushWork(pb.FlushWorkRequest(cpu=0, work_id=ids[0], timeout_ms=100), timeout=CALL_TIMEOUT)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert (
        h.nodes[0].FlushWork(pb.FlushWorkRequest(cpu=0, work_id=ids[-1], timeout_ms=10_000), timeout=CALL_TIMEOUT).done
    )
    assert_audit_ok(h)


def test_requests_after_a_node_was_declared_dead(make_cluster):
    """cpu1's process is killed; the coordinator marks it down, then dead, and takes its pages
    back. From then on nothing in its name changes anything: its heartbeat, a Rmqueue and a
    FreePages of the pages it held, under its incarnation, are FAILED_PRECONDITION, and so is
    another CPU freeing them; its address is UNAVAILABLE; a forced drain of every CPU completes
    without it. No other process dies and the audit balances."""
    h = make_cluster(["housekeeping", "housekeeping"])
    # A snapshot, not wait_pages: the CPU's workload may empty its lists between two calls.
    held = wait_until(lambda: pages_of(h.snapshot(1).pcp_pages)[:3], 15.0, what="pages on cpu1's lists")
    dead_incarnation = h.incarnation(1)
    victim = h.cluster.procs["cpu1"]
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    wait_until(lambda: next(n for n in h.state().nodes if n.cpu == 1).dead, 30, what="cpu1 declared dead")
    precondition = grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as err:
        h.coord.Heartbeat(pb.HeartbeatRequest(cpu=1, pcp_count=5, incarnation=dead_incarnation), timeout=CALL_TIMEOUT)
    assert err.value.code() == precondition
    with pytest.raises(grpc.RpcError) as err:
        h.coord.Rmqueue(
            pb.RmqueueRequest(
                cpu=1, order=0, migratetype=1, count=5, transfer_id="in-a-dead-name", incarnation=dead_incarnation
            ),
            timeout=CALL_TIMEOUT,
        )
    assert err.value.code() == precondition
    assert free_code(h, 1, held, incarnation=dead_incarnation) == precondition
    assert free_code(h, 0, held) == precondition
    with pytest.raises(grpc.RpcError) as err:
        h.nodes[1].GetPcp(pb.CpuRequest(cpu=1), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    drain = h.coord.DrainAllPages(
        pb.DrainAllRequest(strategy=pb.STRATEGY_REMOTE, force_all_cpus=True), timeout=CALL_TIMEOUT
    )
    assert drain.status == pb.DrainAllReply.DONE and [c.cpu for c in drain.cpus] == [0]
    for name, proc in h.cluster.procs.items():
        assert name == "cpu1" or proc.poll() is None, name
    assert_audit_ok(h)


# Fuzzer.run calls assume(), meant for drawn examples; this one is written out by hand.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
def test_a_transfer_id_sent_again_after_its_pages_went_back_loses_no_page(fuzzer):
    """Hypothesis draws the same transfer id again and again. After the fuzzer gave the first
    answer's pages back, the id is no longer the CPU's last transfer: the zone serves it afresh,
    and those pages must be given back too (CI once lost 4 pages this way)."""
    request = pb.RmqueueRequest(cpu=0, order=0, migratetype=0, count=2, transfer_id="reused", incarnation=LIVE)
    served = fuzzer.examples
    for _ in range(3):
        fuzzer.run("Coordinator", 0, "Rmqueue", [request])
    assert fuzzer.examples == served + 3
    assert fuzzer.codes["Coordinator/Rmqueue OK"] >= 3
    assert_audit_ok(fuzzer.h)
