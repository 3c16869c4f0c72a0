"""Shared helpers for the integration suite: real processes, real gRPC on 127.0.0.1.

Every cluster here is a `LocalCluster` (coordinator + one process per CPU, port 0),
run as a context manager inside a fixture so its processes are stopped whatever the
test's outcome. Nothing sleeps a fixed time to wait for a condition: `wait_until`
polls a predicate against a deadline.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from coordinator.tools.cluster import ClusterConfig, LocalCluster
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RPC_TIMEOUT = 10.0
HK_HK_IDLE = ("housekeeping", "housekeeping", "idle")


def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll `predicate` until it returns a truthy value (returned) or `timeout` passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except grpc.RpcError as err:  # a peer still starting or already gone: keep polling
            last_exc = err
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_exc})" if last_exc else "")
            )
        time.sleep(interval)


def transfer_id() -> str:
    return f"test-{uuid.uuid4().hex}"


def rpc_code(call, *args, **kwargs) -> grpc.StatusCode:
    """Make the call, expect it to fail, return its status code."""
    with pytest.raises(grpc.RpcError) as info:
        call(*args, timeout=kwargs.pop("timeout", RPC_TIMEOUT), **kwargs)
    return info.value.code()


class Handle:
    """A running cluster plus sync stubs for the coordinator and every node."""

    def __init__(self, cluster: LocalCluster):
        self.cluster = cluster
        self._channels = [cluster.channel(cluster.coordinator_address)]
        self.coord = pb_grpc.CoordinatorStub(self._channels[0])
        self.nodes: dict[int, pb_grpc.NodeStub] = {}
        self.addresses: dict[int, str] = {}
        for n in cluster.state().nodes:
            ch = cluster.channel(n.address)
            self._channels.append(ch)
            self.nodes[n.cpu] = pb_grpc.NodeStub(ch)
            self.addresses[n.cpu] = n.address

    def close(self) -> None:
        for ch in self._channels:
            ch.close()

    # ------------------------------------------------------------ shortcuts
    def state(self) -> pb.ClusterState:
        return self.coord.GetState(pb.Empty(), timeout=RPC_TIMEOUT)

    def free_pages(self) -> int:
        return self.state().zone.free_pages

    def pcp(self, cpu: int) -> pb.PcpState:
        return self.nodes[cpu].GetPcp(pb.CpuRequest(cpu=cpu), timeout=RPC_TIMEOUT)

    def counts(self) -> dict[int, int]:
        return {cpu: self.pcp(cpu).count for cpu in self.nodes}

    def incarnation(self, cpu: int) -> str:
        """The live incarnation of `cpu` (zone requests on its behalf must name it)."""
        return next(n.incarnation for n in self.state().nodes if n.cpu == cpu)

    def snapshot(self, cpu: int) -> pb.NodeSnapshot:
        return self.nodes[cpu].Snapshot(pb.CpuRequest(cpu=cpu), timeout=RPC_TIMEOUT)

    def audit(self) -> pb.AuditReply:
        return self.coord.Audit(pb.Empty(), timeout=60.0)

    def set_paused(self, paused: bool, cpus=None) -> dict[int, bool]:
        """Pause or resume CPUs; returns {cpu: whether it was paused before}."""
        return {
            cpu: self.nodes[cpu].SetRunState(pb.RunStateRequest(cpu=cpu, paused=paused), timeout=RPC_TIMEOUT).was_paused
            for cpu in (self.nodes if cpus is None else cpus)
        }

    def pcp_errors(self) -> dict[int, list[str]]:
        """check_pcp's findings per CPU, read parked (a running CPU's snapshot is not checked)."""
        before = self.set_paused(True)
        try:
            return {cpu: list(self.snapshot(cpu).errors) for cpu in self.nodes}
        finally:
            self.set_paused(False, [cpu for cpu, was in before.items() if not was])

    def frozen(self) -> tuple[int, dict[int, int]]:
        """(zone free pages, {cpu: pcp count}): what must not move while the cluster is paused."""
        return self.free_pages(), self.counts()

    def pause_with_pages(self, cpus, timeout: float = 15.0) -> None:
        """Park every CPU at a moment when each CPU in `cpus` has pcp pages (a housekeeping CPU's
        lists are briefly empty after a flush that frees everything, so retry until they are not)."""

        def attempt():
            self.set_paused(True)
            if all(self.pcp(c).count > 0 for c in cpus):
                return True
            self.set_paused(False)
            return False

        wait_until(attempt, timeout, what=f"parking with pcp pages on cpus {list(cpus)}")

    def wait_pages(self, cpus, timeout: float = 15.0) -> None:
        """Wait until every CPU in `cpus` has pages on its pcp lists."""
        wait_until(lambda: all(self.pcp(c).count > 0 for c in cpus), timeout, what=f"pcp pages on cpus {list(cpus)}")


def assert_audit_ok(h: Handle) -> pb.AuditReply:
    report = h.audit()
    assert report.ok, f"audit failed: lost {report.lost} dup {report.duplicated} errors {list(report.errors)}"
    assert report.lost == 0 and report.duplicated == 0 and report.unexpected == 0
    return report


@contextlib.contextmanager
def running_cluster(run_dir, roles, **kwargs):
    """A LocalCluster (seed 1, remote default unless given) with stubs; stopped on exit,
    and every one of its processes is checked to be gone."""
    kwargs.setdefault("seed", 1)
    kwargs.setdefault("strategy", "remote")
    with LocalCluster(ClusterConfig(roles=list(roles), **kwargs), run_dir=str(run_dir)) as cluster:
        handle = Handle(cluster)
        try:
            yield handle
        finally:
            handle.close()
    for name, proc in cluster.procs.items():
        assert proc.poll() is not None, f"{name} (pid {proc.pid}) still running after stop"


@pytest.fixture
def make_cluster(tmp_path):
    """Factory: make_cluster(roles, **config) -> Handle; every cluster is stopped at teardown."""
    with contextlib.ExitStack() as stack:
        made = []

        def make(roles, **kwargs) -> Handle:
            made.append(roles)
            run_dir = tmp_path / f"cluster{len(made)}"
            return stack.enter_context(running_cluster(run_dir, roles, **kwargs))

        yield make


@pytest.fixture
def cluster(make_cluster) -> Handle:
    """Two housekeeping CPUs and one idle CPU, zone 1 GiB, no memory pressure, remote default."""
    return make_cluster(HK_HK_IDLE)


class SharedCluster:
    """The shared cluster's life: started by the first test that needs it, stopped after the last of a
    run of such tests (pytest_runtest_teardown below), started again if a later test needs it. Kept
    running to the session's end, its four busy processes took half a core from every other test."""

    KEY = pytest.StashKey["SharedCluster"]()

    def __init__(self, tmp_path_factory) -> None:
        self.factory = tmp_path_factory
        self.stack: contextlib.ExitStack | None = None
        self.handle: Handle | None = None

    def get(self) -> Handle:
        if self.handle is None:
            self.stack = contextlib.ExitStack()
            self.handle = self.stack.enter_context(running_cluster(self.factory.mktemp("shared"), HK_HK_IDLE))
            self.handle.wait_pages([0, 1])
        return self.handle

    def stop(self) -> None:
        stack, self.stack, self.handle = self.stack, None, None
        if stack is not None:
            stack.close()


@pytest.fixture(scope="session")
def shared_cluster_life(request, tmp_path_factory):
    """Session-scoped, so tests/conftest.py keeps every test of the shared cluster on one worker, in a row."""
    life = request.config.stash[SharedCluster.KEY] = SharedCluster(tmp_path_factory)
    yield life
    life.stop()


@pytest.fixture
def shared_cluster(shared_cluster_life) -> Handle:
    """One cluster (housekeeping, housekeeping, idle) shared by every test that leaves it as it
    found it (bad-input tests, refusals, changes undone before the test ends), in every module."""
    return shared_cluster_life.get()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """After the last test of a run of shared-cluster tests (its own fixtures torn down first), stop
    the cluster; under xdist a worker knows its next test (nextitem) before it tears one down."""
    result = yield
    life = item.config.stash.get(SharedCluster.KEY, None)
    if (
        life is not None
        and "shared_cluster" in item.fixturenames
        and (nextitem is None or "shared_cluster" not in nextitem.fixturenames)
    ):
        life.stop()
    return result


@pytest.fixture
def paused(shared_cluster) -> Handle:
    """The shared cluster with every CPU parked (tasks and IRQs stopped), so zone free pages and
    pcp counts cannot move, at a moment when both housekeeping CPUs have pages on their lists;
    resumed afterwards."""
    shared_cluster.pause_with_pages([0, 1])
    yield shared_cluster
    shared_cluster.set_paused(False)


def pid_alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):  # gone; or reaped between open() and read() (ESRCH)
        return False
    return state != "Z"


def port_refuses(address: str) -> bool:
    import socket

    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return False
    except OSError:
        return True


def python_module(*args) -> list[str]:
    return [sys.executable, "-m", *args]


def run_cli(*args, timeout: float = 120.0, env=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        python_module("coordinator.tools.cli", *args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd or REPO,
    )


@dataclass
class ClusterUp:
    """A running `pcpsim cluster up` (see cluster_up): its process, state file and output files."""

    proc: subprocess.Popen
    state_path: Path
    out_path: Path
    err_path: Path

    def state(self) -> dict:
        return json.loads(self.state_path.read_text())

    def output(self) -> str:
        return self.out_path.read_text() + self.err_path.read_text()


@contextlib.contextmanager
def cluster_up(tmp: Path, *argv: str, env=None):
    """`pcpsim cluster up ARGV` in a subprocess, its state file tmp/state/cluster.json; yields a
    ClusterUp once the state file exists. Whatever the test does, nothing it started survives:
    cluster up gets SIGTERM (then SIGKILL), and every process its state file named (at start and
    at the end) is killed."""
    state_path = tmp / "state" / "cluster.json"
    out_path, err_path = tmp / "cluster-up.out", tmp / "cluster-up.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(
            python_module(
                "coordinator.tools.cli",
                "cluster",
                "up",
                *argv,
                "--state",
                str(state_path),
                "--run-dir",
                str(tmp / "run"),
            ),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            env=env,
            start_new_session=True,
        )
    up = ClusterUp(proc, state_path, out_path, err_path)
    pids = []
    try:

        def ready():
            assert proc.poll() is None, f"cluster up exited {proc.returncode}: {up.output()}"
            return state_path.exists()

        wait_until(ready, 60.0, what="the cluster state file")
        pids = list(up.state()["pids"].values())
        yield up
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # A CPU restarted during the test has a new pid: the state file names the latest.
        for pid in {*pids, *(up.state()["pids"].values() if state_path.exists() else ())}:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
