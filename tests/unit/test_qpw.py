"""The qpw strategy's choice (coordinator.drain.qpw): one machine-wide switch, as pwlocks_init() sets it."""

import asyncio
from types import SimpleNamespace

import pytest

from coordinator.drain.drain_all import DRAIN_BY_STRATEGY
from coordinator.drain.qpw import pw_sl_enabled, qpw_strategy
from coordinator.drain.record import STRATEGIES, CpuDrain
from coordinator.drain.wall import WallDriver
from coordinator.membership_rule import MembershipRule
from coordinator.tools.chaos.checker import drain_bound
from coordinator.tools.compare_plan import CompareConfig
from node.api.errors import InvalidArgument
from node.api.v1 import pcpsim_pb2 as pb
from tests.clock import FakeClock

HK, PRE, RT, IDLE = pb.ROLE_HOUSEKEEPING, pb.ROLE_ISOLATED_PREEMPTIBLE, pb.ROLE_ISOLATED_RT, pb.ROLE_IDLE


def test_the_key_turns_on_when_any_cpu_is_isolated_and_only_then():
    assert pw_sl_enabled((), [HK, HK, PRE])
    assert pw_sl_enabled((), [RT])
    assert not pw_sl_enabled((), [HK, IDLE, HK])
    assert not pw_sl_enabled((), [])  # no nohz_full= given and no CPU registered: nothing is NOHZ_FULL


def test_the_key_is_on_from_boot_when_the_machine_has_nohz_full_cpus_before_any_registers():
    """A boot parameter: a coordinator started (or restarted) with --nohz-full knows it before the
    isolated CPUs register (sweep seed 120: a restarted coordinator queued work on cpu1 for a second
    while isolated cpu0 had not registered with it yet)."""
    assert pw_sl_enabled({2, 3}, [])
    assert pw_sl_enabled({2, 3}, [HK, HK])


def test_a_cpu_whose_role_disagrees_with_the_machines_nohz_full_is_refused_and_nothing_changes():
    m = MembershipRule(4, FakeClock(), nohz_full=[2, 3])
    assert m.nohz_full == {2, 3}
    for cpu, role, said in ((0, RT, "cpu 0 registers as isolated-rt"), (3, HK, "cpu 3 registers as housekeeping")):
        with pytest.raises(InvalidArgument, match=f"{said}, and this machine's nohz_full CPUs are 2,3"):
            m.check_registration(cpu, "127.0.0.1:1", role)
    assert m.members == {}
    m.check_registration(2, "127.0.0.1:1", PRE)
    m.check_registration(0, "127.0.0.1:1", HK)
    MembershipRule(4, FakeClock()).check_registration(0, "127.0.0.1:1", RT)  # not given: any role
    with pytest.raises(InvalidArgument):
        MembershipRule(4, FakeClock(), nohz_full=[4])


def _drain(roles: dict[int, int], marked: list[int], nohz_full: frozenset[int] = frozenset()) -> tuple[str, list[int]]:
    """Run the qpw strategy over fake protocols; returns which one drained, and which CPUs."""
    calls: list[tuple[str, list[int]]] = []

    def protocol(name):
        def drain(drainer, members):
            calls.append((name, [m.cpu for m in members]))
            return [CpuDrain(m.cpu) for m in members]
            yield  # a rule: a generator (this one yields no effect)

        return drain

    members = {cpu: SimpleNamespace(cpu=cpu, role=role) for cpu, role in roles.items()}
    drainer = SimpleNamespace(membership=SimpleNamespace(members=members, nohz_full=nohz_full))
    drain_qpw = qpw_strategy(protocol("queue_work_on"), protocol("requester_side"))
    results = asyncio.run(WallDriver(None).run(drain_qpw(drainer, [members[c] for c in marked])))
    assert [r.cpu for r in results] == marked
    assert len(calls) == 1, calls  # one protocol for the whole drain, never a mix
    return calls[0]


def test_with_an_isolated_cpu_every_marked_cpu_is_drained_by_the_requester_housekeeping_ones_too():
    # cpu2 is isolated but holds no pages (not marked): the key is machine-wide, not per target.
    assert _drain({0: HK, 1: HK, 2: RT}, marked=[0, 1]) == ("requester_side", [0, 1])
    assert _drain({0: HK, 1: PRE, 2: RT}, marked=[0, 1, 2]) == ("requester_side", [0, 1, 2])


def test_without_an_isolated_cpu_every_marked_cpu_gets_a_work_item():
    assert _drain({0: HK, 1: HK, 2: IDLE}, marked=[0, 1, 2]) == ("queue_work_on", [0, 1, 2])


def test_a_machine_with_nohz_full_cpus_drains_by_the_requester_while_only_housekeeping_ones_are_registered():
    assert _drain({1: HK}, marked=[1], nohz_full=frozenset({0})) == ("requester_side", [1])


def test_qpw_is_registered_under_its_name_and_its_proto_value():
    assert STRATEGIES["qpw"] == pb.STRATEGY_QPW
    assert pb.STRATEGY_QPW in DRAIN_BY_STRATEGY


def test_a_qpw_chaos_drain_is_allowed_the_longer_of_the_two_protocols_bounds():
    for cpus, flush_s in ((4, 2.0), (4, 30.0), (16, 0.5)):
        args = (cpus, 0.5, 1.5, flush_s)
        assert drain_bound("qpw", *args) == max(drain_bound("workqueue", *args), drain_bound("remote", *args))


def test_compare_refuses_qpw_under_a_kernel_whose_pcp_no_other_cpu_can_lock():
    with pytest.raises(ValueError, match="qpw cannot run under it"):
        CompareConfig(strategies=("workqueue", "qpw"), kernel="5.19")
    assert CompareConfig(strategies=("workqueue", "remote", "rcu-swap", "qpw")).phases[-1] == "qpw"
