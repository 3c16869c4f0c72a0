"""The nemesis under virtual time: a chaos scenario's fault timeline as events on node.sim's queue.

The wall nemesis (coordinator.tools.chaos.nemesis) applies each fault to real processes; this one
applies the same faults at exact virtual instants, as its runner steps them (virtual_runner: each
start at `at_s` and each heal at `at_s + heal_after_s`, or once the step before it is over if that is
later, as the wall runner's loop does), scenario seconds divided by `time_scale` (the scenario's
figures are the wall engine's: virtual time is kernel time). Per kind:
- partition: the wall nemesis's rules on the node (node.sim.faults.PARTITION), set in the network;
  the heal removes them;
- rpc: the same rule on the same process (side "node": the CPU; "coordinator": the coordinator, the
  rule's peer the CPU if one is named), delay in virtual seconds;
- stop-node: the network holds what reaches the CPU (SimNetwork.stop) and the driver stops its code;
  the heal reads what waited and runs it again;
- kill-node, kill-coordinator: the network refuses and loses (SimNetwork.kill) and the driver ends
  the process; the heal revives the endpoint and the driver starts a new process, given at once the
  rules of the faults still active on it (an rpc rule or a partition outlives a restart inside it;
  the wall nemesis gives them to the new process as soon as it can reach it);
- slow-cpu: the CPU's cost factor, through the driver (1 at the heal);
- stop-coordinator-mid-drain: the driver arms the trap; if a drain reaches it before the heal, the
  driver stops the coordinator (its process's Sigstop, node.sim.sigstop, and SimNetwork.stop of its
  endpoint) until the heal, which continues it (`cont`); a trap that never sprang is disarmed then.
- second-coordinator: the driver stops the coordinator with the same trap, or plainly if no drain
  reaches it soon, starts a second one on its address, resumes the first `resume_after_s` after its
  stop, and at the heal records the nodes' epochs and kills the first (the hooks' second pair).
Each endpoint's rules draw from its own
stream of the run's tree ("faults/<endpoint>"), as each wall process draws from its own generator.
"""

from typing import Protocol

from coordinator.tools.chaos.scenario import Fault, Scenario
from node.shared.timebase import TIME_SCALE
from node.sim.clock import EventQueue
from node.sim.faults import ANY_PEER, PARTITION, Rule
from node.sim.net import SimNetwork
from node.sim.rng import RngTree, Uniform

COORDINATOR = "coordinator"


class Hooks(Protocol):
    """What the whole-cluster driver does for the faults that are more than messages. An endpoint is a
    CPU's number or the coordinator's name."""

    def kill(self, endpoint: object) -> None: ...  # end the process: its code and its memory

    def restart(self, endpoint: object) -> None: ...  # a new process on the endpoint

    def stop(self, endpoint: object) -> None: ...  # its code runs no further (SIGSTOP)

    def cont(self, endpoint: object) -> None: ...  # its code runs again (SIGCONT; the coordinator's endpoint too)

    def set_cost_factor(self, cpu: int, factor: float) -> None: ...

    def arm_trap(self, until: float) -> None: ...  # stop mid-drain, until virtual time `until`

    def disarm_trap(self) -> None: ...

    def start_second_coordinator(self, fault: Fault) -> None: ...  # see the module docstring

    def heal_second_coordinator(self, fault: Fault) -> None: ...


class VirtualNemesis:
    def __init__(
        self,
        scenario: Scenario,
        queue: EventQueue,
        net: SimNetwork,
        rng: RngTree,
        hooks: Hooks,
        coordinator: object = COORDINATOR,
        time_scale: float = TIME_SCALE,
    ) -> None:
        self.scenario = scenario
        self.queue = queue
        self.net = net
        self.rng = rng
        self.hooks = hooks
        self.coordinator = coordinator
        self.time_scale = time_scale
        self.origin = 0.0  # the virtual instant of the scenario's time 0 (a runner sets it once the cluster is up)
        self.rules: dict[object, list[tuple[Fault, Rule]]] = {}  # endpoint -> the rules of each active fault
        self._streams: dict[object, Uniform] = {}
        self.trace: list[str] = []  # one line per start and heal: "<virtual time> start|heal <fault>"

    def virtual(self, scenario_s: float) -> float:
        """A span of scenario seconds in virtual seconds."""
        return scenario_s / self.time_scale

    def at(self, scenario_s: float) -> float:
        """The virtual instant of a scenario's instant (its time 0 is virtual time `origin`)."""
        return self.origin + self.virtual(scenario_s)

    def start(self, fault: Fault) -> None:
        self.trace.append(f"{self.queue.clock.now!r} start {fault.describe()}")
        hooks, net = self.hooks, self.net
        if fault.kind == "partition":
            self._add(fault.cpu, fault, PARTITION)
        elif fault.kind == "rpc":
            self._add(self._rpc_endpoint(fault), fault, (self._rpc_rule(fault),))
        elif fault.kind == "slow-cpu":
            assert fault.cpu is not None
            hooks.set_cost_factor(fault.cpu, fault.factor)
        elif fault.kind in ("stop-node", "kill-node", "kill-coordinator"):
            endpoint = self._process(fault)
            if fault.kind == "stop-node":
                net.stop(endpoint)
                hooks.stop(endpoint)
            else:
                net.kill(endpoint)
                hooks.kill(endpoint)
        elif fault.kind == "stop-coordinator-mid-drain":
            hooks.arm_trap(self.at(fault.heal_at_s))
        elif fault.kind == "second-coordinator":
            hooks.start_second_coordinator(fault)
        else:
            raise AssertionError(f"fault kind {fault.kind!r} has no virtual start")

    def heal(self, fault: Fault) -> None:
        self.trace.append(f"{self.queue.clock.now!r} heal {fault.describe()}")
        hooks, net = self.hooks, self.net
        if fault.kind in ("partition", "rpc"):
            endpoint = fault.cpu if fault.kind == "partition" else self._rpc_endpoint(fault)
            self.rules[endpoint] = [(f, r) for f, r in self.rules.get(endpoint, []) if f is not fault]
            self._push(endpoint)
        elif fault.kind == "slow-cpu":
            assert fault.cpu is not None
            hooks.set_cost_factor(fault.cpu, 1.0)
        elif fault.kind == "stop-node":
            endpoint = self._process(fault)
            hooks.cont(endpoint)  # what fell due while stopped runs first, then what reached it (node.sim.sigstop)
            net.resume(endpoint)
        elif fault.kind in ("kill-node", "kill-coordinator"):
            endpoint = self._process(fault)
            net.revive(endpoint)
            self._push(endpoint)  # a new process, under the faults still active on it
            hooks.restart(endpoint)
        elif fault.kind == "stop-coordinator-mid-drain":
            if net.stopped(self.coordinator):  # the trap sprang: SIGCONT, and its endpoint reads what waited
                hooks.cont(self.coordinator)
            else:
                hooks.disarm_trap()
        elif fault.kind == "second-coordinator":
            hooks.heal_second_coordinator(fault)
        else:
            raise AssertionError(f"fault kind {fault.kind!r} has no virtual heal")

    # ------------------------------------------------------------------ helpers
    def _process(self, fault: Fault) -> object:
        return self.coordinator if fault.kind == "kill-coordinator" else fault.cpu

    def _rpc_endpoint(self, fault: Fault) -> object:
        return fault.cpu if fault.side == "node" else self.coordinator

    def _rpc_rule(self, fault: Fault) -> Rule:
        return Rule(
            fault.direction,
            fault.method,
            fault.cpu if fault.side == "coordinator" and fault.cpu is not None else ANY_PEER,
            self.virtual(fault.delay_ms / 1000.0),
            fault.drop,
            fault.drop_reply,
            fault.fail,
        )

    def _add(self, endpoint: object, fault: Fault, rules: tuple[Rule, ...]) -> None:
        self.rules.setdefault(endpoint, []).extend((fault, r) for r in rules)
        self._push(endpoint)

    def _push(self, endpoint: object) -> None:
        self.net.set_rules(endpoint, [r for _, r in self.rules.get(endpoint, [])], self._stream(endpoint))

    def _stream(self, endpoint: object) -> Uniform:
        if endpoint not in self._streams:
            self._streams[endpoint] = self.rng.stream(f"faults/{endpoint}")
        return self._streams[endpoint]
