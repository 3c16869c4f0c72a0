"""The processes run as the Kubernetes manifests start them, on loopback.

Each process gets its manifest's command and env list, resolved as the kubelet does
(fieldRef metadata.name/namespace, then $(VAR) references), with the cluster's names
replaced by loopback ones and nothing else changed:
- an address naming the coordinator's Service -> localhost:<the coordinator's port>;
- a pod's own DNS name (PCPSIM_ADVERTISE) -> localhost:<its own port>;
- a wildcard listen address (0.0.0.0) -> 127.0.0.1:<a free port>;
- the pod's hostname, which a StatefulSet sets to the pod name and --cpu-from-hostname
  reads -> PCPSIM_HOSTNAME=<pod name>;
- PCPSIM_NODES -> the number of node processes, as kustomization.yaml's replacement does;
- PCPSIM_TOKEN_FILE, a file of the Secret's mount -> a fresh local file for the same key
  (the Secret's own values are placeholders the processes refuse);
- `python` -> this interpreter, plus --parent-pid so no process outlives the test.
Every address-valued variable must be one of these, so an address the manifests would
need that this test cannot map (a loopback assumption, a stray name) fails it.
"""

import os
import signal
import socket
import subprocess
import sys
import time

import grpc
import pytest

from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.shared import health_probe, security
from node.shared.config import WILDCARD_HOSTS, split_host_port
from tests.deploy.manifests import (
    argv,
    find,
    kustomization,
    local_token_files,
    only_container,
    pod_env,
    service_names,
    with_local_state,
    with_local_tokens,
)

NODES = 3
RPC_TIMEOUT = 30.0
ADDRESS_VARS = {"PCPSIM_COORDINATOR", "PCPSIM_LISTEN", "PCPSIM_ADVERTISE", "PCPSIM_METRICS_LISTEN"}


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Loopback:
    """Maps the cluster's names and container ports to loopback ones."""

    def __init__(self, namespace: str):
        self.namespace = namespace
        self.ports: dict[str, dict[int, int]] = {}  # process -> container port -> local port
        self.coordinator_hosts = service_names("pcpsim-coordinator", namespace)

    def own(self, process: str, container: dict) -> None:
        ports = [p["containerPort"] for p in container["ports"]]
        self.ports[process] = dict(zip(ports, free_ports(len(ports)), strict=False))

    def address(self, process: str, pod_dns: str | None, var: str, value: str) -> str:
        host, port = split_host_port(value)
        if host in self.coordinator_hosts:
            return f"localhost:{self.ports['coordinator'][port]}"
        if host in WILDCARD_HOSTS:
            return f"127.0.0.1:{self.ports[process][port]}"
        if pod_dns and host == pod_dns:
            return f"localhost:{self.ports[process][port]}"
        raise AssertionError(f"{process}: {var}={value!r} names nothing this cluster has")

    def env(self, process: str, raw: dict[str, str], pod_dns: str | None = None) -> dict[str, str]:
        out = {k: v for k, v in os.environ.items() if not k.startswith("PCPSIM_")}
        for var, value in raw.items():
            out[var] = self.address(process, pod_dns, var, value) if var in ADDRESS_VARS else value
        return with_local_state(with_local_tokens(out, self.token_files), self.state_dir)


class Processes:
    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, cmd: list[str], env: dict) -> None:
        log = open(os.path.join(self.run_dir, f"{name}.log"), "wb")
        with log:
            self.procs[name] = subprocess.Popen(
                [*cmd, "--parent-pid", str(os.getpid())],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                log = open(os.path.join(self.run_dir, f"{name}.log")).read()
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{log}")

    def stop(self) -> None:
        # Nodes first, then the coordinator, as a rollout would.
        order = [n for n in self.procs if n != "coordinator"] + ["coordinator"]
        for group in (order[:-1], order[-1:]):
            live = [self.procs[n] for n in group if n in self.procs and self.procs[n].poll() is None]
            for proc in live:
                proc.send_signal(signal.SIGTERM)
            for proc in live:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def wait_serving(processes: Processes, address: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    status = "no answer"
    while True:
        processes.check_alive()
        try:
            status = health_probe.check(address, timeout=1.0)
            if status == "SERVING":
                return
        except grpc.RpcError as err:
            status = err.code().name
        if time.monotonic() > deadline:
            raise AssertionError(f"{address} not SERVING after {timeout}s (last: {status})")
        time.sleep(0.1)


@pytest.fixture
def manifest_cluster(tmp_path):
    """A coordinator and NODES nodes started from the manifests; every process stopped at the end."""
    ns = kustomization()["namespace"]
    coord, sts = find("Deployment", "pcpsim-coordinator"), find("StatefulSet", "pcpsim-node")
    coord_c, node_c = only_container(coord), only_container(sts)
    headless = sts["spec"]["serviceName"]
    loop = Loopback(ns)
    loop.token_files = local_token_files(str(tmp_path / "tokens"))
    loop.state_dir = str(tmp_path / "state")
    loop.own("coordinator", coord_c)
    pods = [f"{sts['metadata']['name']}-{n}" for n in range(NODES)]
    for pod in pods:
        loop.own(pod, node_c)

    processes = Processes(str(tmp_path))
    try:
        raw = pod_env(coord_c, f"{coord['metadata']['name']}-0", ns)
        raw["PCPSIM_NODES"] = str(NODES)
        processes.start("coordinator", argv(coord_c, sys.executable), loop.env("coordinator", raw))
        for pod in pods:
            raw = pod_env(node_c, pod, ns)
            raw["PCPSIM_HOSTNAME"] = pod
            env = loop.env(pod, raw, pod_dns=f"{pod}.{headless}.{ns}.svc")
            processes.start(pod, argv(node_c, sys.executable), env)
        yield processes, loop, pods
    finally:
        processes.stop()
        for name, proc in processes.procs.items():
            assert proc.poll() is not None, f"{name} (pid {proc.pid}) still running"


def test_coordinator_and_nodes_started_as_the_manifests_say_drain_both_ways_and_audit_ok(manifest_cluster):
    """Health says SERVING on every process (asked before any other RPC); every node
    registered under its advertised name and the role the map gives it; a forced drain with
    each strategy drains every CPU; the audit finds no page lost or duplicated."""
    processes, loop, pods = manifest_cluster
    coordinator = f"localhost:{loop.ports['coordinator'][50051]}"
    wait_serving(processes, coordinator, 30)
    for pod in pods:
        wait_serving(processes, f"localhost:{loop.ports[pod][50051]}", 30)

    operator = security.load_token_file(loop.token_files["operator.token"], security.OPERATOR)
    with security.channel(coordinator, operator) as channel:
        stub = pb_grpc.CoordinatorStub(channel)
        state = stub.GetState(pb.Empty(), timeout=RPC_TIMEOUT)
        assert [n.cpu for n in state.nodes] == list(range(NODES))
        assert all(n.up for n in state.nodes)
        assert [n.address for n in state.nodes] == [f"localhost:{loop.ports[p][50051]}" for p in pods]
        assert [pb.Role.Name(n.role) for n in state.nodes] == [
            "ROLE_HOUSEKEEPING",
            "ROLE_HOUSEKEEPING",
            "ROLE_ISOLATED_PREEMPTIBLE",
        ]
        for strategy in (pb.STRATEGY_WORKQUEUE, pb.STRATEGY_REMOTE):
            reply = stub.DrainAllPages(pb.DrainAllRequest(strategy=strategy, force_all_cpus=True), timeout=RPC_TIMEOUT)
            assert reply.status == pb.DrainAllReply.DONE, reply
            assert reply.strategy == strategy
            assert sorted(c.cpu for c in reply.cpus) == list(range(NODES))
            assert all(c.ok for c in reply.cpus), reply
        audit = stub.Audit(pb.Empty(), timeout=60.0)
        assert audit.ok, f"lost {audit.lost} duplicated {audit.duplicated} errors {list(audit.errors)}"
        assert audit.lost == 0 and audit.duplicated == 0
