"""Run-time fault rules: validation (a bad request changes nothing) and their effects."""

import asyncio

import grpc
import pytest

from node.api.errors import InvalidArgument, Unavailable
from node.api.v1 import pcpsim_pb2 as pb
from node.shared.faults import Faults, InjectedRpcError

IN, OUT = pb.DIRECTION_IN, pb.DIRECTION_OUT


def rule(**kw) -> pb.FaultRule:
    return pb.FaultRule(**{"direction": IN, "method": "*", "peer": -1, **kw})


@pytest.mark.parametrize("bad,message", [
    (rule(direction=pb.DIRECTION_UNSPECIFIED, drop=1), "direction must be IN or OUT"),
    (rule(method="", drop=1), "method is required"),
    (rule(peer=-2, drop=1), "peer must be a CPU number or -1"),
    (rule(delay_ms=60_001), "delay_ms 60001 exceeds 60000"),
    (rule(drop=1.5), "drop must be a probability"),
    (rule(fail=-0.1), "fail must be a probability"),
    (rule(drop_reply=float("nan")), "drop_reply must be a probability"),
    (rule(direction=OUT, drop_reply=0.5), "drop_reply applies to IN rules only"),
])
def test_a_bad_rule_is_refused_and_the_old_rules_stay(bad, message):
    faults = Faults(on_cost_factor=lambda f: None)
    faults.set(pb.FaultsRequest(rules=[rule(method="Heartbeat", delay_ms=5)]))
    before = faults.rules
    with pytest.raises(InvalidArgument, match=message):
        faults.set(pb.FaultsRequest(rules=[rule(drop=0.5), bad]))
    assert faults.rules == before


def test_cost_factor_and_trap_belong_to_one_kind_of_process():
    applied = []
    node = Faults(on_cost_factor=applied.append)
    node.set(pb.FaultsRequest(cost_factor=20))
    assert applied == [20.0]
    with pytest.raises(InvalidArgument, match="cost_factor must be in"):
        node.set(pb.FaultsRequest(cost_factor=0.5))
    with pytest.raises(InvalidArgument, match="stop_mid_drain applies to the coordinator only"):
        node.set(pb.FaultsRequest(stop_mid_drain=True))
    assert applied == [20.0]
    coordinator = Faults()
    with pytest.raises(InvalidArgument, match="cost_factor applies to nodes only"):
        coordinator.set(pb.FaultsRequest(cost_factor=2))
    coordinator.set(pb.FaultsRequest(stop_mid_drain=True))
    assert coordinator.stop_mid_drain


def test_inbound_effects_fail_drop_and_drop_reply():
    async def main():
        handled = []

        async def handle():
            handled.append(1)
            return "reply"

        f = Faults()
        f.set(pb.FaultsRequest(rules=[rule(method="ZoneStream.*", peer=3, fail=1.0)]))
        assert await f.inbound("ZoneStream.free", 2, handle) == "reply"   # another peer: untouched
        assert await f.inbound("Heartbeat", 3, handle) == "reply"         # another method: untouched
        with pytest.raises(Unavailable):
            await f.inbound("ZoneStream.free", 3, handle)
        assert len(handled) == 2
        f.set(pb.FaultsRequest(rules=[rule(drop=1.0)]))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(f.inbound("Heartbeat", 0, handle), 0.05)
        assert len(handled) == 2  # a dropped request is never handled
        f.set(pb.FaultsRequest(rules=[rule(drop_reply=1.0)]))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(f.inbound("Heartbeat", 0, handle), 0.05)
        assert len(handled) == 3  # a dropped reply: handled, then lost
        assert dict(f.set(pb.FaultsRequest()).injected) == {"fail": 1, "drop": 1, "drop_reply": 1}
        assert await f.inbound("Heartbeat", 0, handle) == "reply"  # healed
    asyncio.run(main())


def test_outbound_effects_look_like_rpc_errors():
    f = Faults()
    f.set(pb.FaultsRequest(rules=[rule(direction=OUT, method="ZoneStream.free", fail=1.0),
                                  rule(direction=OUT, method="ZoneStream.rmqueue", drop=1.0)]))
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
        f.set(pb.FaultsRequest(seed=seed, rules=[rule(direction=OUT, fail=0.5)]))
        out = []
        for _ in range(40):
            try:
                f.outbound_sync("X", 0)
                out.append(0)
            except InjectedRpcError:
                out.append(1)
        return out
    assert pattern(7) == pattern(7) and pattern(7) != pattern(8) and 5 < sum(pattern(7)) < 35
