"""The nemesis: starts and heals the faults of a scenario on a LocalCluster.

Process faults are real signals (SIGKILL, SIGSTOP, SIGCONT) and real restarts. RPC
faults, partitions and slow CPUs are set at run time with SetFaults on the process that
applies them (node.shared.faults); a process restarted by a heal is given the rules and cost
factor of the faults still active on it: the coordinator as soon as it listens, a node once it
has registered (its address is known then), as the virtual nemesis does at the restart's
instant. The coordinator trap (stop-coordinator-mid-drain) is armed with SetFaults; the
coordinator SIGSTOPs itself mid-drain, which the nemesis sees in /proc, and SIGCONTs it at
the heal. While it is stopped the nemesis watches every node's
pcp lock and records when each is free again (the lease bound the checker verifies).
The second-coordinator fault stops the coordinator with the same trap (so it is mid-drain
when it resumes), starts a second one on its address and state directory (gRPC binds its
port with SO_REUSEPORT, so both listen: the kernel gives each new connection to one of
them, and an attempt that reaches the stopped one times out and is made again), lets the
nodes move to it (their keepalive pings find the stopped one), then resumes the first
while the second runs: the first finishes its drain against nodes that have seen the
second's epoch. The heal records every node's epochs and refusals, and what each node
answers a request carrying the first's epoch (as the first would send: it rarely gets to,
since it finds every CPU's heartbeats stale once it resumes), then kills the first.
Every start, heal and observation goes to the history, with what failed if anything did.
No step waits on a process that cannot answer (docs/protocol.md, *Chaos runs*): a kill is a signal
and asks no one, and rules that change while their process is stopped go to it after its SIGCONT.
"""

import contextlib
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc

from coordinator.tools.chaos import lock_watch
from coordinator.tools.chaos.epoch_probe import stale_probe, stored_epoch
from coordinator.tools.chaos.plan import TRAP_WAIT_S
from coordinator.tools.chaos.processes import RPC_TIMEOUT_S, answers_as, process_state, sigstop
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc

RESTORE_WAIT_S = 10.0  # a heal's restart: how long the new process may take to take its faults
RESTORE_POLL_S = 0.02
PROBE_TIMEOUT_S = 1.0  # a second coordinator's heal asks each node its epochs: a record, not worth holding the heal
ALL = pb.FaultRule(direction=pb.DIRECTION_IN, method="*", peer=-1, drop=1.0)
# A node cut off: every request it receives and every one it sends is lost.
PARTITION = (ALL, pb.FaultRule(direction=pb.DIRECTION_OUT, method="*", peer=-1, drop=1.0))
DIRECTIONS = {"in": pb.DIRECTION_IN, "out": pb.DIRECTION_OUT}


class Nemesis:
    def __init__(self, cluster, history, seed: int):
        self.cluster = cluster
        self.history = history
        self.seed = seed
        self.names = {cpu: f"cpu{cpu}" for cpu in range(len(cluster.config.roles))}
        self.addresses = {n.cpu: n.address for n in cluster.ready.nodes}
        # Whose rules ("coordinator" or a CPU) -> [(fault, FaultRule)]: keyed by the process's place, not
        # its name, so a restarted process is given the rules of the faults still active on it.
        self.rules: dict[object, list] = {}
        self.factors: dict[int, float] = {}
        self.changes: dict[object, int] = {}  # target -> how often its rules or factor changed (`_push`)
        # Targets ("coordinator" or a CPU) whose rules changed while their process was stopped: it takes
        # no SetFaults then (the call would wait out RPC_TIMEOUT_S, holding up every later step of the
        # schedule), so they are pushed right after its SIGCONT.
        self.deferred: set[object] = set()
        self.restarts = 0
        self._trap_watch: threading.Thread | None = None
        self._trapped = threading.Event()
        self._resume: threading.Timer | None = None  # second-coordinator: SIGCONT of the first

    # ------------------------------------------------------------------ entry points
    def start(self, fault) -> None:
        self._record(fault, "start", getattr(self, "_start_" + fault.kind.replace("-", "_")))

    def heal(self, fault) -> None:
        self._record(fault, "heal", getattr(self, "_heal_" + fault.kind.replace("-", "_")))

    def _record(self, fault, phase: str, action) -> None:
        try:
            detail = {**fault.where(), **(action(fault) or {})}
            self.history.add("nemesis", "fault", fault.kind, phase=phase, what=fault.describe(), **detail)
        except Exception as err:  # a fault that could not be applied is recorded, not fatal
            error = f"{type(err).__name__}: {err}"
            self.history.add(
                "nemesis", "fault", fault.kind, phase=phase, what=fault.describe(), error=error, **fault.where()
            )

    # ------------------------------------------------------------------ processes
    def _proc(self, cpu: int):
        return self.cluster.procs[self.names[cpu]]

    def _start_kill_node(self, f):
        # The signal needs no one's answer. Until 2026-12-07 this asked the coordinator first which
        # incarnations it ended: with the coordinator killed (sweep seed 4009) the kill failed, the heal
        # started a second process for the CPU, and the two replaced each other's registration in turn.
        proc = self._proc(f.cpu)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        return {"pid": proc.pid}

    def _heal_kill_node(self, f):
        old = self._proc(f.cpu)
        if old.poll() is None:  # its start failed: a second process would register as the same CPU
            raise RuntimeError(f"cpu{f.cpu}'s process {old.pid} still runs: no second one started")
        self.restarts += 1
        self.names[f.cpu] = f"cpu{f.cpu}-restart{self.restarts}"
        proc = self.cluster.start_node(f.cpu, name=self.names[f.cpu])
        if self.rules.get(f.cpu) or f.cpu in self.factors:
            # Its address is known once it has registered: the faults active on it follow then.
            ready = lambda: self._registered_again(f.cpu)  # noqa: E731
            threading.Thread(target=self._restore, args=(f.cpu, ready), daemon=True).start()
        return {"pid": proc.pid}

    def _registered_again(self, cpu: int) -> bool:
        """Whether `cpu`'s running process is a member (its address noted then)."""
        try:
            nodes = self.cluster.state(timeout=RPC_TIMEOUT_S).nodes
        except grpc.RpcError:
            return False
        for n in nodes:
            if n.cpu == cpu and not n.dead and answers_as(self.cluster, n):
                self.addresses[cpu] = n.address
                return True
        return False

    def _restore(self, target: object, ready) -> None:
        """Give a restarted process (`target`: "coordinator" or a CPU) the rules and cost factor of
        the faults still active on it once `ready()` (a node: registered on a new address) and it
        takes them, within RESTORE_WAIT_S, as the virtual nemesis does at the restart's instant;
        the history says when, or why it could not."""
        deadline, error = time.monotonic() + RESTORE_WAIT_S, "not ready"
        while time.monotonic() < deadline:
            if ready():
                try:
                    self._push(target)
                except grpc.RpcError as err:
                    error = f"SetFaults: {err.code().name}"
                else:
                    self.history.add("nemesis", "observe", "faults-restored", target=str(target))
                    return
            time.sleep(RESTORE_POLL_S)
        self.history.add("nemesis", "observe", "faults-restored", target=str(target), error=error)

    def _start_stop_node(self, f):
        sigstop(self._proc(f.cpu))
        return {"pid": self._proc(f.cpu).pid}

    def _heal_stop_node(self, f):
        # The heal entry is written after the SIGCONT, when the node may have run already: until when it
        # was surely stopped (tests/stopped.py reads it).
        stopped_until = round(self.history.now(), 6)
        self._proc(f.cpu).send_signal(signal.SIGCONT)
        return {"stopped_until": stopped_until, **self._push_deferred(f.cpu)}

    def _start_kill_coordinator(self, f):
        proc = self.cluster.procs["coordinator"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        return {"pid": proc.pid}

    def _heal_kill_coordinator(self, f):
        proc = self.cluster.start_coordinator(time.monotonic() + 30.0)
        if self.rules.get("coordinator"):  # listening, but not yet serving for a moment: asked again
            threading.Thread(target=self._restore, args=("coordinator", lambda: True), daemon=True).start()
        return {"pid": proc.pid}

    def _start_stop_coordinator_mid_drain(self, f):
        self._set_faults("coordinator", stop_mid_drain=True)
        self._trapped.clear()
        self._trap_watch = threading.Thread(target=self._watch_trap, args=(f,), daemon=True)
        self._trap_watch.start()

    def _heal_stop_coordinator_mid_drain(self, f):
        proc = self.cluster.procs["coordinator"]
        trapped = self._trapped.is_set()
        self._trapped.set()  # ends the watch if the trap never sprang
        if process_state(proc.pid) == "T":
            # At the heal's instant, whatever the watch is doing: a read of it may be waiting out its timeout
            # on a node that cannot answer (until 2026-12-07 the SIGCONT waited for the watch, and the stop
            # of tests/chaos/lock-watch-beside-a-partitioned-node.toml lasted 0.7 s longer than written).
            proc.send_signal(signal.SIGCONT)
            self._join_watch()
            return {"trapped": True, **self._push_deferred("coordinator")}
        self._join_watch()
        return {"trapped": self._disarm(proc) or trapped, **self._push_deferred("coordinator")}

    def _disarm(self, proc) -> bool:
        """Disarm a trap that had not sprung at the heal; True if it springs before the call is answered, the
        coordinator then SIGCONTed. A stopped process answers no SetFaults: until 2026-12-07 the trap springing
        between the heal's look and the disarm (seed 4055 under the wall engine) left the coordinator stopped
        for good, the call timed out, and the run's final observations found no coordinator."""
        request = pb.FaultsRequest(seed=self.seed, stop_mid_drain=False)
        sprang = False
        with self.cluster.channel(self.cluster.coordinator_address) as ch:
            call = pb_grpc.CoordinatorStub(ch).SetFaults.future(request, timeout=RPC_TIMEOUT_S)
            while not call.done():
                if not sprang and process_state(proc.pid) == "T":
                    proc.send_signal(signal.SIGCONT)
                    sprang = True
                time.sleep(0.005)
            call.result()  # what failed, if the call did
        return sprang

    def _join_watch(self) -> None:
        """Let the watch write what it saw before the heal's entry if it ends soon: it ends once the
        coordinator runs, after the read under way. One of its first round, which waits longer for an
        answer, may end after the heal (its entries come later in the history then)."""
        if self._trap_watch is not None:
            self._trap_watch.join(lock_watch.READ_TIMEOUT_S)

    def _watch_trap(self, f) -> None:
        """Wait for the coordinator to stop itself, then watch the pcp locks it held (lock_watch) until
        the heal."""
        pid = self.cluster.procs["coordinator"].pid
        while not self._trapped.is_set():
            if process_state(pid) == "T":
                break
            time.sleep(0.005)
        else:
            return
        self.history.add("nemesis", "observe", "coordinator-stopped", pid=pid)
        self._trapped.set()
        lock_watch.watch(
            self.history,
            dict(self.addresses),
            self._lock_holder,
            lambda: process_state(pid) == "T",
            self.history.now() + f.heal_after_s,
            RPC_TIMEOUT_S,
        )

    def _lock_holder(self, cpu: int, address: str, timeout: float) -> int | None:
        state = self._node_call(address, "GetPcp", pb.CpuRequest(cpu=cpu), timeout=timeout)
        return None if state is None else state.remote_token

    def _start_second_coordinator(self, f):
        cluster = self.cluster
        first = cluster.procs["coordinator"]
        old_epoch = stored_epoch(self.cluster)
        self._set_faults("coordinator", stop_mid_drain=True)
        deadline = time.monotonic() + TRAP_WAIT_S
        while process_state(first.pid) != "T" and time.monotonic() < deadline:
            time.sleep(0.005)
        trapped = process_state(first.pid) == "T"
        if not trapped:  # no drain came by: stop it anyway (armed, it may stop itself again once resumed)
            sigstop(first)
        stopped_at = self.history.now()
        second = cluster.start_coordinator(time.monotonic() + 30.0, name="coordinator-2")
        self._resume = threading.Timer(
            max(0.0, f.resume_after_s - (self.history.now() - stopped_at)), self._resume_first, args=(first,)
        )
        self._resume.start()
        return {
            "pid": first.pid,
            "second_pid": second.pid,
            "trapped": trapped,
            "old_epoch": old_epoch,
            "new_epoch": stored_epoch(self.cluster),
        }

    def _resume_first(self, first) -> None:
        first.send_signal(signal.SIGCONT)
        self.history.add("nemesis", "observe", "first-coordinator-resumed", pid=first.pid)

    def _heal_second_coordinator(self, f):
        cluster = self.cluster
        if "coordinator-2" not in cluster.procs:
            raise RuntimeError("no second coordinator runs (its start failed): nothing to heal")
        if self._resume is not None:
            self._resume.join()
        old_epoch = stored_epoch(self.cluster) - 1
        # Every node at once, each with a short timeout: until 2026-12-07 one after the other with the RPC
        # timeout, and a partitioned cpu5 held this heal up by 4 s (sweep seed 4226 under the wall engine:
        # the two coordinators ran for 4.7 s, nearly the second's whole recovery window).
        with ThreadPoolExecutor(max_workers=max(1, len(self.addresses))) as pool:
            observed = [
                (cpu, pool.submit(self._epochs_of, cpu, a, old_epoch)) for cpu, a in sorted(self.addresses.items())
            ]
            answers = [(cpu, seen.result()) for cpu, seen in observed]
        epochs = {str(cpu): answer for cpu, answer in answers if answer is not None}
        first = cluster.procs["coordinator"]
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        # The second is the cluster's coordinator from now on; the first stays listed to be reaped.
        cluster.procs["coordinator-1"] = first
        cluster.procs["coordinator"] = cluster.procs.pop("coordinator-2")
        return {"killed": first.pid, "nodes": epochs, **self._push_deferred("coordinator")}

    def _epochs_of(self, cpu: int, address: str, old_epoch: int) -> dict | None:
        """A node's epochs and refusals, and its answer to a request of `old_epoch`; None without an answer."""
        if self._stopped(cpu):  # it would answer only after its SIGCONT
            return {"stopped": True}
        snap = self._node_call(address, "Snapshot", pb.CpuRequest(cpu=cpu), timeout=PROBE_TIMEOUT_S)
        if snap is None:
            return None
        return {
            "seen": snap.coordinator_epoch,
            "registered": snap.registered_epoch,
            "stale_requests_refused": snap.stale_requests_refused,
            "stale_replies_ignored": snap.stale_replies_ignored,
            "probe": stale_probe(self.cluster, cpu, address, old_epoch, PROBE_TIMEOUT_S),
        }

    # ------------------------------------------------------------------ run-time RPC faults
    def _rpc_target(self, f) -> object:
        return f.cpu if f.side == "node" else "coordinator"

    def _start_rpc(self, f):
        rule = pb.FaultRule(
            direction=DIRECTIONS[f.direction],
            method=f.method,
            peer=f.cpu if f.side == "coordinator" and f.cpu is not None else -1,
            delay_ms=f.delay_ms,
            drop=f.drop,
            drop_reply=f.drop_reply,
            fail=f.fail,
        )
        return self._add_rules(self._rpc_target(f), f, [rule])

    def _heal_rpc(self, f):
        return self._remove_rules(self._rpc_target(f), f)

    def _start_partition(self, f):
        return self._add_rules(f.cpu, f, list(PARTITION))

    def _heal_partition(self, f):
        return self._remove_rules(f.cpu, f)

    def _start_slow_cpu(self, f):
        self.factors[f.cpu] = f.factor
        return self._changed(f.cpu)

    def _heal_slow_cpu(self, f):
        self.factors.pop(f.cpu, None)
        return self._changed(f.cpu)

    def _add_rules(self, target: object, fault, rules):
        self.rules.setdefault(target, []).extend((fault, r) for r in rules)
        return self._changed(target)

    def _remove_rules(self, target: object, fault):
        self.rules[target] = [(f, r) for f, r in self.rules.get(target, []) if f is not fault]
        return self._changed(target)

    def _changed(self, target: object):
        self.changes[target] = self.changes.get(target, 0) + 1
        return self._push(target)

    def _push(self, target: object):
        """Send `target` its rules and factor as they are now, again if they changed meanwhile: a restarted
        coordinator's restore thread (`_restore`) sent rules read before a heal, asked again across the
        next restart, and they were the last word (sweep seed 4401 under the wall engine: a healed rule
        failing every call of cpu4 stayed on the coordinator to the end of the run)."""
        while True:
            seen = self.changes.get(target, 0)
            pushed = self._push_now(target)
            if self.changes.get(target, 0) == seen:
                return pushed

    def _push_now(self, target: object):
        if self._stopped(target):
            self.deferred.add(target)
            return {"deferred": "stopped"}
        if self._process(target).poll() is not None:  # killed: the rules died with it; its restart takes them
            return {"deferred": "dead"}
        rules = [r for _, r in self.rules.get(target, [])]
        if isinstance(target, int):
            return self._set_faults(target, rules=rules, cost_factor=self.factors.get(target, 1.0))
        return self._set_faults(target, rules=rules)

    def _set_faults(self, target: object, **fields):
        """SetFaults on the coordinator (target "coordinator") or CPU `target`'s node."""
        request = pb.FaultsRequest(seed=self.seed, **fields)
        if target == "coordinator":
            reply = self._coordinator_set_faults(request)
        else:
            assert isinstance(target, int)
            reply = self._node_call(self._address(target), "SetFaults", request, raise_errors=True)
        return {"injected": dict(reply.injected)}

    def _coordinator_set_faults(self, request: pb.FaultsRequest) -> pb.FaultsReply:
        """SetFaults on the coordinator's address, asked again on a fresh connection if the first is reset
        before it is answered: right after a second coordinator's heal killed the first, whose listening
        socket shared the port (SO_REUSEPORT), a new connection the kernel had queued on the dying socket
        is reset (seed 4036 under the wall engine: a third second-coordinator's trap was never armed)."""
        deadline = time.monotonic() + RPC_TIMEOUT_S
        while True:
            try:
                with self.cluster.channel(self.cluster.coordinator_address) as ch:
                    timeout = max(0.05, deadline - time.monotonic())
                    return pb_grpc.CoordinatorStub(ch).SetFaults(request, timeout=timeout)
            except grpc.RpcError as err:
                if err.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() >= deadline:
                    raise
            time.sleep(RESTORE_POLL_S)

    def _push_deferred(self, target: object) -> dict:
        """The rules of `target`, continued just now, if they changed while it was stopped: a message it
        handles before they arrive meets the rules it had at its stop (the virtual engine's network
        applies them at their instant, stopped or not)."""
        if target not in self.deferred:
            return {}
        self.deferred.discard(target)
        return {"pushed": self._push(target)}

    # ------------------------------------------------------------------ helpers
    def _process(self, target: object):
        """The process of `target` ("coordinator" or a CPU)."""
        if target == "coordinator":
            return self.cluster.procs["coordinator"]
        assert isinstance(target, int)
        return self._proc(target)

    def _stopped(self, target: object) -> bool:
        """Whether the process of `target` is SIGSTOPped now."""
        return process_state(self._process(target).pid) == "T"

    def _address(self, cpu: int) -> str:
        # The coordinator down, stopped, or restarted and not yet rejoined by `cpu`: the last known address.
        if not self._stopped("coordinator"):
            with contextlib.suppress(grpc.RpcError):
                nodes = self.cluster.state(timeout=RPC_TIMEOUT_S).nodes
                self.addresses.update({n.cpu: n.address for n in nodes})
        return self.addresses[cpu]

    def _node_call(
        self, address: str, method: str, request, raise_errors: bool = False, timeout: float = RPC_TIMEOUT_S
    ):
        try:
            with self.cluster.channel(address) as ch:
                return getattr(pb_grpc.NodeStub(ch), method)(request, timeout=timeout)
        except grpc.RpcError:
            if raise_errors:
                raise
            return None
