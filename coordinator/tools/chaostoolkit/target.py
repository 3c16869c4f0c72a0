"""Which cluster an activity acts on, and how its arguments are checked.

The cluster is the one the state file names, found and dialed as the CLI finds it
(coordinator.tools.cli.connect): the experiment's configuration key `pcpsim_state`, else
$PCPSIM_STATE, else .pcpsim/cluster.json. Process ids come from the same file, which
`cluster up` rewrites when it restarts a node.
"""

import contextlib
import os
import time
import types

from coordinator.drain.record import STRATEGIES
from coordinator.tools.cli.connect import DEFAULT_STATE, client_security, coordinator_address, read_state
from coordinator.tools.cli.errors import CliError
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.shared import security

RPC_TIMEOUT_S = 10.0


class Target:
    """One cluster, as its state file describes it."""

    def __init__(self, configuration: dict | None):
        path = (configuration or {}).get("pcpsim_state") or os.environ.get("PCPSIM_STATE", DEFAULT_STATE)
        # The CLI's own flags, unset: its helpers read the state file for the rest.
        self.args = types.SimpleNamespace(
            state=path, coordinator=None, token_file=None, tls_cert=None, tls_key=None, tls_ca=None
        )
        try:
            self.address = coordinator_address(self.args)
            self.security = client_security(self.args)
        except CliError as err:
            raise ValueError(str(err)) from None

    def document(self) -> dict:
        try:
            doc = read_state(self.args.state)
        except CliError as err:
            raise ValueError(str(err)) from None
        if doc is None:
            raise ValueError(f"no cluster state file at {self.args.state}")
        return doc

    @contextlib.contextmanager
    def coordinator(self):
        with security.channel(self.address, self.security) as ch:
            yield pb_grpc.CoordinatorStub(ch)

    @contextlib.contextmanager
    def node(self, cpu: int):
        with security.channel(self.node_info(cpu).address, self.security) as ch:
            yield pb_grpc.NodeStub(ch)

    def state(self) -> pb.ClusterState:
        with self.coordinator() as stub:
            return stub.GetState(pb.Empty(), timeout=RPC_TIMEOUT_S)

    def node_info(self, cpu: int) -> pb.NodeInfo:
        nodes = {n.cpu: n for n in self.state().nodes}
        if cpu not in nodes:
            raise ValueError(f"cpu: the cluster has CPUs {sorted(nodes)}, not {cpu}")
        return nodes[cpu]

    def wait_up(self, timeout_s: float) -> tuple[int, int]:
        """(CPUs up, CPUs) once every CPU is up and not declared dead, or when timeout_s has passed."""
        deadline = time.monotonic() + timeout_s
        while True:
            nodes = self.state().nodes
            up = sum(1 for n in nodes if n.up and not n.dead)
            if up == len(nodes) or time.monotonic() >= deadline:
                return up, len(nodes)
            time.sleep(0.1)

    def pid(self, cpu: int) -> int:
        """The pid of the CPU's current process, as `cluster up` last wrote it."""
        pids = self.document().get("node_pids", {})
        pid = pids.get(str(cpu)) if isinstance(pids, dict) else None
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            raise ValueError(f"cpu: the state file {self.args.state} lists no process for CPU {cpu}")
        return pid

    def cpu(self, value) -> int:
        """`value` as one of the cluster's CPUs, or a ValueError naming the argument."""
        cpu = whole("cpu", value)
        self.node_info(cpu)
        return cpu


def whole(name: str, value, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: expected a whole number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return value


def number(name: str, value, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name}: must be in [{low}, {high}], got {value}")
    return float(value)


def strategy(value) -> pb.Strategy:
    if value not in STRATEGIES:
        raise ValueError(f"strategy: expected one of {', '.join(STRATEGIES)}, got {value!r}")
    return STRATEGIES[value]
