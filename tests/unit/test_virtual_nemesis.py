"""coordinator.tools.chaos.virtual_nemesis: a scenario's faults started and healed at exact virtual instants."""

import glob
import tomllib

import pytest

from coordinator.tools.chaos import scenario
from coordinator.tools.chaos.virtual_nemesis import COORDINATOR, VirtualNemesis
from node.sim.clock import EventQueue
from node.sim.faults import ANY_PEER, PARTITION, Rule
from node.sim.net import Latency, SimNetwork
from node.sim.rng import RngTree

ONE_WAY = 1e-3
SCALE = 2.0  # scenario seconds per virtual second, so every instant below is exact in binary


class Hooks:
    """The whole-cluster driver's side, recorded with the virtual instant of each call."""

    def __init__(self, queue: EventQueue) -> None:
        self.queue = queue
        self.calls: list[tuple] = []

    def _note(self, *call) -> None:
        self.calls.append((self.queue.clock(), *call))

    def kill(self, endpoint):
        self._note("kill", endpoint)

    def restart(self, endpoint):
        self._note("restart", endpoint)

    def stop(self, endpoint):
        self._note("stop", endpoint)

    def cont(self, endpoint):
        self._note("cont", endpoint)

    def set_cost_factor(self, cpu, factor):
        self._note("cost", cpu, factor)

    def arm_trap(self, until):
        self._note("arm", until)

    def disarm_trap(self):
        self._note("disarm")

    def start_second_coordinator(self, fault):
        self._note("second", fault.kind)

    def heal_second_coordinator(self, fault):
        self._note("end-first", fault.kind)


def _scenario(*faults: str) -> scenario.Scenario:
    text = 'name = "t"\nduration_s = 20\nheal_s = 2\n[cluster]\ncpus = 4\nisolated = "2-3"\n'
    doc = tomllib.loads(text + "".join(f"[[faults]]\n{f}\n" for f in faults))
    return scenario.parse(doc, "t.toml")


def _run(sc: scenario.Scenario, seed: int = 1):
    q = EventQueue()
    tree = RngTree(seed)
    net = SimNetwork(q, tree.stream("net"), Latency([(0.0, ONE_WAY), (100.0, ONE_WAY)]))
    hooks = Hooks(q)
    nemesis = VirtualNemesis(sc, q, net, tree.subtree("nemesis"), hooks, time_scale=SCALE)
    for fault in sc.faults:  # each at its own instants (the runner's steps never overlap these scenarios')
        q.at(nemesis.at(fault.at_s), nemesis.start, fault)
        q.at(nemesis.at(fault.heal_at_s), nemesis.heal, fault)
    return q, net, hooks, nemesis


def _rules(net: SimNetwork, endpoint) -> tuple:
    faults = net.faults(endpoint)
    return () if faults is None else faults.rules


def test_a_partition_sets_the_wall_rules_at_its_start_and_removes_them_at_its_heal_exactly():
    q, net, _, nemesis = _run(_scenario('kind = "partition"\ncpu = 1\nat_s = 2.0\nheal_after_s = 3.0'))
    q.run(0.999)
    assert _rules(net, 1) == ()
    q.run(1.0)  # 2.0 scenario seconds
    assert _rules(net, 1) == PARTITION
    q.run(2.4999)
    assert _rules(net, 1) == PARTITION
    q.run(2.5)
    assert _rules(net, 1) == ()
    assert nemesis.trace == ["1.0 start partition cpu1", "2.5 heal partition cpu1"]


def test_rpc_faults_go_to_the_process_of_their_side_with_the_delay_in_virtual_seconds():
    q, net, _, _ = _run(
        _scenario(
            'kind = "rpc"\nside = "node"\ncpu = 0\ndirection = "in"\nmethod = "PcpControl.*"\n'
            "drop_reply = 0.3\nat_s = 1.0\nheal_after_s = 2.0",
            'kind = "rpc"\nside = "coordinator"\ncpu = 2\ndirection = "out"\ndelay_ms = 500\n'
            "at_s = 1.0\nheal_after_s = 4.0",
            'kind = "rpc"\nside = "coordinator"\ndirection = "in"\nmethod = "ZoneStream.*"\nfail = 0.5\n'
            "at_s = 1.0\nheal_after_s = 1.0",
        )
    )
    q.run(0.5)
    assert _rules(net, 0) == (Rule("in", "PcpControl.*", ANY_PEER, drop_reply=0.3),)
    assert _rules(net, COORDINATOR) == (
        Rule("out", "*", 2, delay_s=0.25),
        Rule("in", "ZoneStream.*", ANY_PEER, fail=0.5),
    )
    q.run(1.0)  # the coordinator's second rule heals at 2.0 scenario seconds, its first stays
    assert _rules(net, COORDINATOR) == (Rule("out", "*", 2, delay_s=0.25),)
    q.run(2.5)
    assert _rules(net, 0) == () and _rules(net, COORDINATOR) == ()


def test_a_stopped_node_reads_at_the_heal_what_reached_it_and_the_driver_stops_and_continues_it():
    q, net, hooks, _ = _run(_scenario('kind = "stop-node"\ncpu = 2\nat_s = 1.0\nheal_after_s = 1.0'))
    handled = []
    q.at(0.6, net.request, COORDINATOR, 2, "QueueWork", lambda respond: handled.append(q.clock()), print, print)
    q.run(5.0)
    assert hooks.calls == [(0.5, "stop", 2), (1.0, "cont", 2)]
    assert handled == [1.0]


def test_kill_and_restart_at_exact_instants_and_the_new_process_runs_under_the_faults_still_active():
    """A process restarted inside an rpc fault on it is given that fault's rule at once (a rule on
    the coordinator outlives its restart too, or a Register answered by the new coordinator would
    escape the fault that should lose its reply); the rule goes at the fault's heal."""
    q, net, hooks, _ = _run(
        _scenario(
            'kind = "kill-node"\ncpu = 3\nat_s = 1.0\nheal_after_s = 2.0',
            'kind = "rpc"\nside = "node"\ncpu = 3\ndirection = "in"\ndrop = 1.0\nat_s = 0.5\nheal_after_s = 5.0',
            'kind = "kill-coordinator"\nat_s = 4.0\nheal_after_s = 1.0',
            'kind = "rpc"\nside = "coordinator"\ndirection = "in"\nmethod = "Register"\ndrop_reply = 1.0\n'
            "at_s = 4.5\nheal_after_s = 1.5",
        )
    )
    errors = []
    q.at(0.75, net.request, COORDINATOR, 3, "GetPcp", print, print, lambda *e: errors.append((q.clock(), *e)))
    q.run(1.5)
    assert net.dead(3) is False and _rules(net, 3) == (Rule("in", "*", ANY_PEER, drop=1.0),)
    assert errors == [(0.75 + 2 * ONE_WAY, "UNAVAILABLE", "3 is down")]
    q.run(2.5)
    assert _rules(net, 3) == (Rule("in", "*", ANY_PEER, drop=1.0),)
    assert _rules(net, COORDINATOR) == (Rule("in", "Register", ANY_PEER, drop_reply=1.0),)
    q.run(10.0)
    assert _rules(net, 3) == () and _rules(net, COORDINATOR) == ()
    assert hooks.calls == [
        (0.5, "kill", 3),
        (1.5, "restart", 3),
        (2.0, "kill", COORDINATOR),
        (2.5, "restart", COORDINATOR),
    ]


def test_slow_cpu_and_the_coordinator_trap_go_to_the_driver():
    q, net, hooks, _ = _run(
        _scenario(
            'kind = "slow-cpu"\ncpu = 1\nfactor = 10\nat_s = 1.0\nheal_after_s = 2.0',
            'kind = "stop-coordinator-mid-drain"\nat_s = 2.0\nheal_after_s = 2.0',
            'kind = "stop-coordinator-mid-drain"\nat_s = 6.0\nheal_after_s = 2.0',
        )
    )
    q.at(2.5, net.stop, COORDINATOR)  # the second trap springs: the driver stops the coordinator's endpoint
    q.run(10.0)
    assert hooks.calls == [
        (0.5, "cost", 1, 10.0),
        (1.0, "arm", 2.0),
        (1.5, "cost", 1, 1.0),
        (2.0, "disarm"),  # the first never sprang
        (3.0, "arm", 4.0),
        (4.0, "cont", COORDINATOR),  # SIGCONT: the driver's, which resumes its endpoint too (VirtualDriver.cont)
    ]


def test_a_second_coordinator_is_the_drivers_to_start_and_heal_at_the_faults_instants():
    q, _, hooks, _ = _run(
        _scenario('kind = "second-coordinator"\nat_s = 1.0\nheal_after_s = 2.0\nresume_after_s = 1.0')
    )
    q.run(10.0)
    assert hooks.calls == [(0.5, "second", "second-coordinator"), (1.5, "end-first", "second-coordinator")]


def _outcomes(seed: int) -> list:
    """The shipped mixed scenario (lost zone replies drawn from the seed) with zone requests from every CPU
    throughout: what became of each."""
    sc = scenario.load("deploy/chaos/mixed.toml")
    q, net, hooks, nemesis = _run(sc, seed)
    seen: list = []
    for k in range(400):
        cpu = k % 4
        q.at(
            k * 0.01,
            net.request,
            cpu,
            COORDINATOR,
            "ZoneStream.free",
            lambda respond, k=k: respond(k),
            lambda v: seen.append(("reply", q.clock(), v)),
            lambda *e: seen.append(("error", q.clock(), *e)),
        )
    q.run(10.0)
    return [*seen, *nemesis.trace, *hooks.calls]


def test_one_seed_gives_one_trace_and_another_seed_another():
    assert _outcomes(3) == _outcomes(3)
    assert _outcomes(3) != _outcomes(4)


# A second coordinator is refused under virtual time (the test above): the other scenarios must schedule.
ONE_COORDINATOR = [
    p
    for p in sorted(glob.glob("deploy/chaos/*.toml"))
    if not any(f.kind == "second-coordinator" for f in scenario.load(p).faults)
]


def test_only_the_two_coordinators_scenario_needs_a_second_coordinator():
    assert len(ONE_COORDINATOR) == len(glob.glob("deploy/chaos/*.toml")) - 1


@pytest.mark.parametrize("path", ONE_COORDINATOR)
def test_every_shipped_scenario_but_second_coordinator_schedules(path):
    sc = scenario.load(path)
    q, _, _, nemesis = _run(sc)
    q.run(sc.duration_s / SCALE)
    assert len(nemesis.trace) == 2 * len(sc.faults)
