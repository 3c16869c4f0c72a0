"""Run-time fault rules: validation (a bad request changes nothing) and their effects, and the
server interceptor that applies them and maps domain errors (on a grpc.aio server on 127.0.0.1)."""

import asyncio

import grpc
import pytest

from node.api import validate
from node.api.errors import InvalidArgument, Unavailable
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.shared.faults import MAX_RULES, Faults, InjectedRpcError
from node.shared.interceptors import ErrorsAndFaultsInterceptor
from node.shared.reply_stream import serve_ops

IN, OUT = pb.DIRECTION_IN, pb.DIRECTION_OUT


def rule(**kw) -> pb.FaultRule:
    return pb.FaultRule(**{"direction": IN, "method": "*", "peer": -1, **kw})


@pytest.mark.parametrize(
    "bad,message",
    [
        (rule(direction=pb.DIRECTION_UNSPECIFIED, drop=1), "direction must be IN or OUT"),
        (rule(method="", drop=1), "method is required"),
        (rule(peer=-2, drop=1), r"peer must be -1 \(any\) or a CPU of the cluster: cpu -2 out of range"),
        (rule(delay_ms=60_001), "delay_ms 60001 exceeds 60000"),
        (rule(drop=1.5), "drop must be a probability"),
        (rule(fail=-0.1), "fail must be a probability"),
        (rule(drop_reply=float("nan")), "drop_reply must be a probability"),
        (rule(direction=OUT, drop_reply=0.5), "drop_reply applies to IN rules only"),
    ],
)
def test_a_bad_rule_is_refused_and_the_old_rules_stay(bad, message):
    faults = Faults(on_cost_factor=lambda f: None)
    faults.set(pb.FaultsRequest(rules=[rule(method="GetStats", delay_ms=5)]), "node")
    before = faults.rules
    with pytest.raises(InvalidArgument, match=message):
        faults.set(pb.FaultsRequest(rules=[rule(drop=0.5), bad]), "node")
    assert faults.rules == before


@pytest.mark.parametrize(
    "side,bad,message",
    [
        ("node", rule(method="NoSuchMethod", fail=1), "rule 1: method 'NoSuchMethod' matches nothing the node serves"),
        ("node", rule(method="Register", fail=1), "matches nothing the node serves (the Node service's GetPcp"),
        ("node", rule(direction=OUT, method="Heartbeet", fail=1), "'Heartbeet' matches nothing the node sends"),
        ("node", rule(direction=OUT, method="ZoneStram.*", fail=1), "'ZoneStram.*' matches nothing the node sends"),
        ("coordinator", rule(method="nothing", fail=1), "'nothing' matches nothing the coordinator serves"),
        ("coordinator", rule(direction=OUT, method="Heartbeat", fail=1), "matches nothing the coordinator sends"),
        ("node", rule(method="[", fail=1), "'[' is not a valid glob: the '[' at 0 is never closed"),
        ("coordinator", rule(method="ZoneStream.[rf", fail=1), "the '[' at 11 is never closed"),
        ("node", rule(method="SetFaults", fail=1), "'SetFaults' matches nothing"),  # exempt: never faulted
        ("coordinator", rule(peer=99, fail=1), "rule 1: peer must be -1 (any) or a CPU of the cluster: cpu 99"),
        ("coordinator", rule(peer=3, fail=1), "cpu 3 out of range 0..2"),
        ("node", rule(peer=1024, fail=1), "cpu 1024 out of range 0..1023"),
        ("node", rule(), "rule 1: a rule needs a delay, drop, drop_reply or fail: one with none does nothing"),
    ],
)
def test_a_rule_that_can_do_nothing_is_refused_and_the_old_rules_stay(side, bad, message):
    """A typo'd or impossible method, a peer outside the cluster (3 CPUs here; a node, which learns the
    size only when it registers, bounds a peer by MAX_CPUS) or a rule with no effect would be accepted
    and never apply: refused like any bad rule, the rules in force kept."""
    faults = Faults(on_cost_factor=lambda f: None) if side == "node" else Faults()
    where = ("node",) if side == "node" else ("coordinator", 3)  # as each servicer calls it
    faults.set(pb.FaultsRequest(rules=[rule(method="*", delay_ms=5)]), *where)
    before = faults.rules
    with pytest.raises(InvalidArgument) as err:
        faults.set(pb.FaultsRequest(rules=[rule(drop=0.5), bad]), *where)
    assert message in str(err.value)
    assert faults.rules == before


def test_method_globs_match_what_each_side_serves_and_sends():
    node, coordinator = Faults(on_cost_factor=lambda f: None), Faults()
    node.set(pb.FaultsRequest(rules=[rule(method=m, fail=1) for m in ("PcpControl.*", "*Work", "Get[PS]*")]), "node")
    outs = ("Register", "ZoneStream.*", "DrainAllPages")
    node.set(pb.FaultsRequest(rules=[rule(direction=OUT, method=m, fail=1) for m in outs]), "node")
    coordinator.set(pb.FaultsRequest(rules=[rule(method=m, fail=1) for m in outs]), "coordinator", 3)
    coordinator.set(
        pb.FaultsRequest(rules=[rule(direction=OUT, method=m, peer=2, fail=1) for m in ("PcpControl.unlock", "*")]),
        "coordinator",
        3,
    )
    assert len(coordinator.rules) == 2


def test_one_request_holds_at_most_max_rules():
    faults = Faults()
    faults.set(pb.FaultsRequest(rules=[rule(delay_ms=1)] * MAX_RULES), "coordinator", 3)
    with pytest.raises(InvalidArgument, match=f"10000 rules in one request, limit {MAX_RULES}"):
        faults.set(pb.FaultsRequest(rules=[rule(delay_ms=1)] * 10_000), "coordinator", 3)
    assert len(faults.rules) == MAX_RULES


def test_cost_factor_and_trap_belong_to_one_kind_of_process():
    applied = []
    node = Faults(on_cost_factor=applied.append)
    node.set(pb.FaultsRequest(cost_factor=20), "node")
    assert applied == [20.0]
    with pytest.raises(InvalidArgument, match="cost_factor must be in"):
        node.set(pb.FaultsRequest(cost_factor=0.5), "node")
    with pytest.raises(InvalidArgument, match="stop_mid_drain applies to the coordinator only"):
        node.set(pb.FaultsRequest(stop_mid_drain=True), "node")
    assert applied == [20.0]
    coordinator = Faults()
    with pytest.raises(InvalidArgument, match="cost_factor applies to nodes only"):
        coordinator.set(pb.FaultsRequest(cost_factor=2), "coordinator", 4)
    coordinator.set(pb.FaultsRequest(stop_mid_drain=True), "coordinator", 4)
    assert coordinator.stop_mid_drain


def test_inbound_effects_fail_drop_and_drop_reply():
    async def main():
        handled = []

        async def handle():
            handled.append(1)
            return "reply"

        f = Faults()
        f.set(pb.FaultsRequest(rules=[rule(method="ZoneStream.*", peer=3, fail=1.0)]), "coordinator", 4)
        assert await f.inbound("ZoneStream.free", 2, handle) == "reply"  # another peer: untouched
        assert await f.inbound("Heartbeat", 3, handle) == "reply"  # another method: untouched
        with pytest.raises(Unavailable):
            await f.inbound("ZoneStream.free", 3, handle)
        assert len(handled) == 2
        f.set(pb.FaultsRequest(rules=[rule(drop=1.0)]), "coordinator", 4)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(f.inbound("Heartbeat", 0, handle), 0.05)
        assert len(handled) == 2  # a dropped request is never handled
        f.set(pb.FaultsRequest(rules=[rule(drop_reply=1.0)]), "coordinator", 4)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(f.inbound("Heartbeat", 0, handle), 0.05)
        assert len(handled) == 3  # a dropped reply: handled, then lost
        assert dict(f.set(pb.FaultsRequest(), "coordinator", 4).injected) == {"fail": 1, "drop": 1, "drop_reply": 1}
        assert await f.inbound("Heartbeat", 0, handle) == "reply"  # healed

    asyncio.run(main())


def test_outbound_effects_look_like_rpc_errors():
    f = Faults()
    f.set(
        pb.FaultsRequest(
            rules=[
                rule(direction=OUT, method="ZoneStream.free", fail=1.0),
                rule(direction=OUT, method="ZoneStream.rmqueue", drop=1.0),
            ]
        ),
        "node",  # a node's zone client sends these
    )
    with pytest.raises(InjectedRpcError) as err:
        f.outbound_sync("ZoneStream.free", 1.0)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(InjectedRpcError) as err:
        f.outbound_sync("ZoneStream.rmqueue", 0.01)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    f.outbound_sync("Heartbeat", 1.0)  # no rule: nothing happens


def test_draws_are_seeded():
    def pattern(seed):
        f = Faults()
        f.set(pb.FaultsRequest(seed=seed, rules=[rule(direction=OUT, fail=0.5)]), "node")
        out = []
        for _ in range(40):
            try:
                f.outbound_sync("X", 0)
                out.append(0)
            except InjectedRpcError:
                out.append(1)
        return out

    assert pattern(7) == pattern(7) and pattern(7) != pattern(8) and 5 < sum(pattern(7)) < 35


# ------------------------------------------------------------------ the server interceptor
class _Servicer(pb_grpc.NodeServicer):
    """GetPcp, SetFaults and PcpControl's unlock, recording what reached them."""

    def __init__(self, faults):
        self.faults = faults
        self.handled = []

    async def GetPcp(self, request, context):
        validate.cpu(request.cpu, 1)
        return pb.PcpState(cpu=request.cpu)

    async def SetFaults(self, request, context):
        return self.faults.set(request, "node")

    async def PcpControl(self, request_iterator, context):
        async for reply in serve_ops(request_iterator, pb.PcpControlReply, {"unlock": ("unlocked", self._unlock)}):
            yield reply

    async def _unlock(self, request):
        self.handled.append(request.token)
        validate.token(request.token)
        return pb.Empty()


async def test_the_interceptor_maps_errors_and_applies_faults_to_calls_and_stream_messages():
    """A domain error ends a unary call with its status code, and answers only its message on a
    stream, which stays open; IN faults apply to a call as "<Method>" and to a stream message as
    "<Method>.<op>" (peer: its cpu), and never to SetFaults."""
    faults = Faults()
    servicer = _Servicer(faults)
    node_service = pb.DESCRIPTOR.services_by_name["Node"]
    server = grpc.aio.server(interceptors=[ErrorsAndFaultsInterceptor(faults, [node_service])])
    pb_grpc.add_NodeServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.NodeStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetPcp(pb.CpuRequest(cpu=5), timeout=5)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

            stream = stub.PcpControl()

            async def unlock(cpu, token, timeout=5):
                await stream.write(pb.PcpControlRequest(unlock=pb.PcpUnlockRequest(cpu=cpu, token=token)))
                return await asyncio.wait_for(stream.read(), timeout)

            reply = await unlock(0, 0)
            assert (reply.code, reply.error) == ("INVALID_ARGUMENT", "token 0 is never granted")
            assert (await unlock(0, 1)).HasField("unlocked")  # the stream is still open

            await stub.SetFaults(
                pb.FaultsRequest(
                    rules=[
                        rule(method="PcpControl.unlock", peer=3, fail=1.0),
                        rule(method="GetPcp", fail=1.0),
                        rule(method="Set*", fail=1.0),  # SetRunState: SetFaults is exempt
                    ]
                ),
                timeout=5,
            )
            assert (await unlock(3, 2)).code == "UNAVAILABLE"
            assert (await unlock(2, 3)).HasField("unlocked")  # another peer: untouched
            assert servicer.handled == [0, 1, 3]  # a failed message is never handled
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetPcp(pb.CpuRequest(cpu=0), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE

            await stub.SetFaults(pb.FaultsRequest(rules=[rule(method="PcpControl.*", drop_reply=1.0)]), timeout=5)
            with pytest.raises(asyncio.TimeoutError):
                await unlock(0, 4, timeout=0.2)
            assert servicer.handled[-1] == 4  # handled, then its reply lost
            stream.cancel()
    finally:
        await server.stop(None)
