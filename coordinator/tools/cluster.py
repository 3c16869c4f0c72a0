"""A local cluster: one coordinator process and one process per simulated CPU, on loopback.

The coordinator starts on port 0 and reports its port on stdout; each node then starts
on port 0 and registers. `start` returns once every CPU has registered and is sending
heartbeats. `stop` sends SIGTERM to every child, waits, and SIGKILLs stragglers; the
children also stop on their own if this process dies (they watch their parent pid),
so no orphan keeps a port bound. Every child's output goes to a log file in run_dir.

Authentication is on unless the config turns it off: `start` generates the cluster's
secrets into run_dir/secrets (node.shared.security: mode 0600 files, never printed): the
operator's, a node token per CPU bound to that CPU and the coordinator's token toward each
CPU, bound to it too; it hands each child its token
file, and `channel()` dials with the operator's. TLS settings
(ClusterConfig.tls: certificate, key, CA paths) are passed to every child as given.

The coordinator keeps its durable state (coordinator.store: its epoch, the CMA and offline
ranges it took) in run_dir/coordinator-state, given to every coordinator this cluster
starts, so a restarted one keeps them (`state_dir`); `start` begins a new cluster without
an earlier one's.

The state file lists every process's gRPC and /metrics address; next to it,
prometheus-targets.json is the same in Prometheus file_sd format (job pcpsim-node or
pcpsim-coordinator; cpu and role labels), so a Prometheus started with
`file_sd_configs` on it finds the cluster.
"""

import abc
import dataclasses
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import IO

import grpc

from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.mm.profile import DEFAULT_KERNEL
from node.mm.zone import DEFAULT_ZONE_MB
from node.shared import security
from node.shared.cpulist import nohz_full, role_label

TARGETS_FILE = "prometheus-targets.json"


class ClusterError(RuntimeError):
    pass


@dataclass
class ClusterConfig:
    roles: list[str]
    seed: int = 1
    strategy: str | None = "remote"  # None: the kernel profile's
    kernel: str = DEFAULT_KERNEL
    zone_mb: int = DEFAULT_ZONE_MB
    zone_used: float = 0.0
    listen_host: str = "127.0.0.1"
    auth: bool = True  # generate tokens and require them
    tls: "TlsPaths | None" = None
    coordinator_args: list = field(default_factory=list)
    node_args: list = field(default_factory=list)
    # An rt-app task set every node reads (node --workload); `roles` must be workload_roles' for it.
    workload: str | None = None
    # A cost model file (node.shared.timebase) the coordinator and every node read (--cost-model).
    cost_model: str | None = None

    def cost_model_args(self) -> list[str]:
        return ["--cost-model", os.path.abspath(self.cost_model)] if self.cost_model else []


@dataclass(frozen=True)
class TlsPaths:
    cert: str
    key: str
    ca: str
    client_auth: bool = False

    def args(self) -> list[str]:
        return ["--tls-cert", self.cert, "--tls-key", self.key, "--tls-ca", self.ca] + (
            ["--tls-client-auth"] if self.client_auth else []
        )


class Supervised(abc.ABC):
    """Processes started by `start` and stopped by `stop`, also as a context manager; a
    start that fails half-way stops what it started."""

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()


class LocalCluster(Supervised):
    def __init__(self, config: ClusterConfig, run_dir: str, state_file: str | None = None):
        self.config = config
        self.run_dir = run_dir
        self.state_file = state_file
        self.coordinator_address = ""
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs: list[IO[bytes]] = []
        # "coordinator", "operator", "node-cpuN" (each CPU its own, bound to it) -> path (auth on)
        self.token_files: dict[str, str] = {}
        self.security = security.INSECURE  # how this process (the operator) dials the cluster
        self.node_names: dict[int, str] = {}  # cpu -> name in procs of its current process
        self.restarts = 0
        # The coordinator's answer in which wait_ready saw every CPU up: each CPU's address, the zone.
        # Read from here, not asked again, right after start: on a loaded host one more GetState can
        # break (sweep seed 4598, `--jobs 4`: "Stream removed (ping timeout)" ended the run unstarted).
        self.ready = pb.ClusterState()

    @property
    def state_dir(self) -> str:
        return os.path.abspath(os.path.join(self.run_dir, "coordinator-state"))

    def channel(self, address: str) -> grpc.Channel:
        """A channel to one of the cluster's processes, with the operator's credentials."""
        return security.channel(address, self.security)

    def _security_args(self, who: str) -> list[str]:
        tls = self.config.tls.args() if self.config.tls else []
        return tls + (["--token-file", self.token_files[who]] if self.token_files else [])

    def _spawn(self, name: str, argv: list[str], stdout=None) -> subprocess.Popen:
        log = open(os.path.join(self.run_dir, f"{name}.log"), "ab")  # noqa: SIM115 - the child's, closed by stop()
        self._logs.append(log)
        proc = subprocess.Popen(
            [sys.executable, "-m", *argv, "--parent-pid", str(os.getpid())],
            stdout=stdout or log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def start(self, timeout: float = 60.0) -> None:
        cfg = self.config
        deadline = time.monotonic() + timeout
        try:
            os.makedirs(self.run_dir, exist_ok=True)
            self._set_up_security()
        except (OSError, security.SecurityError) as err:  # a run directory that is a file, a secrets path taken
            raise ClusterError(f"cannot set up run directory {self.run_dir}: {err}") from None
        # A new cluster: an earlier one's state in this run directory (its ranges) is not this one's.
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self.start_coordinator(deadline)
        for cpu in range(len(cfg.roles)):
            self.start_node(cpu)
        self.wait_ready(deadline)
        if self.state_file:
            self.write_state(self.state_file, self.ready)

    def start_coordinator(self, deadline: float, name: str = "coordinator") -> subprocess.Popen:
        """Start the coordinator: on port 0 the first time, then (after it died, or beside a stopped
        one under another `name`) on the same address, where the nodes look for it."""
        cfg = self.config
        old = self.procs.get(name)
        if old is not None and old.stdout:
            old.stdout.close()
        listen = self.coordinator_address or f"{cfg.listen_host}:0"
        os.makedirs(self.state_dir, exist_ok=True)
        isolated = nohz_full(cfg.roles)  # the machine's nohz_full=: qpw's key, and each node's role checked
        nohz_full_args = ["--nohz-full", ",".join(map(str, isolated))] if isolated else []
        coord = self._spawn(
            name,
            [
                "coordinator",
                "--listen",
                listen,
                "--nodes",
                str(len(cfg.roles)),
                *nohz_full_args,
                "--kernel",
                cfg.kernel,
                *(["--strategy", cfg.strategy] if cfg.strategy else []),
                "--zone-mb",
                str(cfg.zone_mb),
                "--zone-used",
                str(cfg.zone_used),
                "--state-dir",
                self.state_dir,
                *cfg.cost_model_args(),
                *self._security_args("coordinator"),
                *cfg.coordinator_args,
            ],
            stdout=subprocess.PIPE,
        )
        self.coordinator_address = self._read_listening(coord, deadline, name)
        return coord

    def start_node(self, cpu: int, name: str | None = None) -> subprocess.Popen:
        """Start the node process of `cpu` (again, after it died: give a new `name`)."""
        cfg = self.config
        self.node_names[cpu] = name or f"cpu{cpu}"
        return self._spawn(
            name or f"cpu{cpu}",
            [
                "node",
                "--cpu",
                str(cpu),
                "--coordinator",
                self.coordinator_address,
                "--listen",
                f"{cfg.listen_host}:0",
                "--role",
                cfg.roles[cpu],
                "--seed",
                str(cfg.seed),
                *(["--workload", os.path.abspath(cfg.workload)] if cfg.workload else []),
                *cfg.cost_model_args(),
                *self._security_args(f"node-cpu{cpu}"),
                *cfg.node_args,
            ],
        )

    def restart_exited_nodes(self) -> list[str]:
        """Start again, as a new incarnation under a new name (its own log), every node whose
        current process exited, as Compose's restart policy does; the names started."""
        started = []
        for cpu, name in list(self.node_names.items()):
            if self.procs[name].poll() is not None:
                self.restarts += 1
                self.start_node(cpu, name=f"cpu{cpu}-restart{self.restarts}")
                started.append(self.node_names[cpu])
        return started

    def _set_up_security(self) -> None:
        cfg = self.config
        if cfg.auth and not self.token_files:
            self.token_files = security.generate_token_files(
                os.path.abspath(os.path.join(self.run_dir, "secrets")), nr_cpus=len(cfg.roles)
            )
        sec = (
            security.load_token_file(self.token_files["operator"], security.OPERATOR)
            if self.token_files
            else security.INSECURE
        )
        tls = cfg.tls
        self.security = dataclasses.replace(
            sec, tls=security.load_tls(tls.cert, tls.key, tls.ca, tls.client_auth) if tls else None
        )

    def _read_listening(self, proc: subprocess.Popen, deadline: float, name: str) -> str:
        assert proc.stdout is not None, "the coordinator is started with stdout=PIPE"
        fd = proc.stdout.fileno()
        buf = b""
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if proc.poll() is not None or left <= 0:
                raise ClusterError(
                    f"coordinator did not start (exit {proc.poll()}); see {os.path.join(self.run_dir, name + '.log')}"
                )
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    continue
                buf += chunk
        line = buf.split(b"\n", 1)[0].decode()
        if not line.startswith("LISTENING "):
            raise ClusterError(f"unexpected first line from the coordinator: {line!r}")
        return line.split(" ", 1)[1]

    def state(self, timeout: float = 5.0) -> pb.ClusterState:
        with self.channel(self.coordinator_address) as channel:
            return pb_grpc.CoordinatorStub(channel).GetState(pb.Empty(), timeout=timeout)

    def wait_ready(self, deadline: float) -> None:
        n = len(self.config.roles)
        while True:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise ClusterError(
                        f"{name} exited with {proc.returncode}; see {os.path.join(self.run_dir, name + '.log')}"
                    )
            try:
                state = self.state()
            except grpc.RpcError:
                state = pb.ClusterState()
            up = sum(1 for node in state.nodes if node.up)
            if up == n:
                self.ready = state
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"only {up} of {n} CPUs registered in time")
            time.sleep(0.1)

    def write_state(self, state_file: str, state: pb.ClusterState | None = None) -> None:
        """The state file of `state` (default: the coordinator's answer now)."""
        state = self.state() if state is None else state
        doc = {
            "coordinator": self.coordinator_address,
            "run_dir": self.run_dir,
            "pids": {name: p.pid for name, p in self.procs.items()},
            "node_pids": {str(cpu): self.procs[name].pid for cpu, name in self.node_names.items()},
            "coordinator_metrics": state.metrics_address,
            # Paths, never secrets: the CLI dials with these (pcpsim state, drain, audit).
            "token_file": self.token_files.get("operator"),
            "tls": self.config.tls and dataclasses.asdict(self.config.tls),
            "nodes": [
                {"cpu": n.cpu, "address": n.address, "metrics": n.metrics_address, "role": pb.Role.Name(n.role)}
                for n in state.nodes
            ],
        }
        _write_json(state_file, doc)
        _write_json(_targets_file(state_file), prometheus_targets(state))

    def stop(self, grace: float = 5.0) -> None:
        # Nodes first, so none is left talking to a coordinator that is gone.
        coordinators = [n for n in self.procs if n.startswith("coordinator")]
        nodes = [n for n in self.procs if n not in coordinators]
        for group in (nodes, coordinators):
            live = [self.procs[n] for n in group if n in self.procs and self.procs[n].poll() is None]
            for proc in live:
                proc.send_signal(signal.SIGCONT)  # a stopped process (a chaos fault) cannot act on SIGTERM
                proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            for proc in live:
                try:
                    proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for proc in self.procs.values():
            if proc.stdout:
                proc.stdout.close()
        for log in self._logs:
            log.close()
        self._logs = []
        if self.state_file:
            for path in (self.state_file, _targets_file(self.state_file)):
                if os.path.exists(path):
                    os.unlink(path)


def _targets_file(state_file: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(state_file)), TARGETS_FILE)


def prometheus_targets(state: pb.ClusterState) -> list[dict]:
    """Prometheus file_sd groups: one per process that serves /metrics."""
    groups = [
        {
            "targets": [n.metrics_address],
            "labels": {"job": "pcpsim-node", "cpu": str(n.cpu), "role": role_label(n.role)},
        }
        for n in state.nodes
        if n.metrics_address
    ]
    if state.metrics_address:
        groups.append(
            {"targets": [state.metrics_address], "labels": {"job": "pcpsim-coordinator", "role": "coordinator"}}
        )
    return groups


def _write_json(path: str, doc) -> None:
    """Write then rename, so a reader (Prometheus watches file_sd files) never sees half a file."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2)
    os.replace(tmp, path)
