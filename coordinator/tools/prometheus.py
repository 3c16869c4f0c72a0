"""A local Prometheus for a local cluster (`pcpsim cluster up --prometheus`), and a client of its HTTP API.

Prometheus (Debian package `prometheus`, 2.42) runs as a plain child process with a
config rendered from deploy/prometheus/prometheus.yml: the committed file names the
targets file and the rule files relative to itself (so it works as is from the
repository root with the default state file); the rendered copy, written into the run
directory, names them by absolute path (render_config may also change the scrape and
evaluation interval). Its TSDB lives in a fresh temp dir under the run directory, and it listens on
127.0.0.1 at a port found free by binding (9090 if asked for and free, else port 0;
retried if another process takes the port first). The child gets SIGTERM if this process dies
(coordinator.tools.die_with_parent), as the cluster's children stop when their parent is gone.

Prometheus's first scrape lands ~5 s after it starts, even at a 1 s interval: callers
poll (PrometheusApi.query), never sleep a fixed time.
"""

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import IO

from coordinator.tools.cluster import TARGETS_FILE, Supervised

DEPLOY_DIR = str(pathlib.Path(__file__).resolve().parents[2] / "deploy" / "prometheus")
CONFIG = os.path.join(DEPLOY_DIR, "prometheus.yml")
DEFAULT_PORT = 9090  # where deploy/grafana/provisioning/datasources/pcpsim.yml looks
INSTALL_HINT = (
    "the `prometheus` binary is not on PATH; install the Debian package with "
    "`sudo apt-get install prometheus` (it provides prometheus and promtool)"
)

# The lines of deploy/prometheus/prometheus.yml that rendering rewrites; each must occur once.
_TARGETS_LINE = "- ../../.pcpsim/" + TARGETS_FILE
_RULES_LINE = "- rules/*.yml"
_INTERVAL_LINES = ("scrape_interval: 5s", "evaluation_interval: 5s")


class PrometheusError(RuntimeError):
    pass


def find_binary(name: str = "prometheus") -> str:
    """Path of the prometheus (or promtool) binary; PrometheusError with the install hint if absent."""
    path = shutil.which(name)
    if path is None:
        raise PrometheusError(INSTALL_HINT.replace("`prometheus` binary", f"`{name}` binary"))
    return path


def targets_file(state_file: str) -> str:
    """The file_sd targets file LocalCluster writes next to its state file."""
    return os.path.join(os.path.dirname(os.path.abspath(state_file)), TARGETS_FILE)


def render_config(targets: str, scrape_interval: str | None = None, template: str = CONFIG) -> str:
    """deploy/prometheus/prometheus.yml with absolute paths for `targets` and the rule files, and
    `scrape_interval` (e.g. "1s") for both the scrape and the rule evaluation interval if given."""
    with open(template) as f:
        text = f.read()
    rules = os.path.join(os.path.dirname(os.path.abspath(template)), "rules", "*.yml")
    edits = [(_TARGETS_LINE, "- " + json.dumps(os.path.abspath(targets))), (_RULES_LINE, "- " + json.dumps(rules))]
    if scrape_interval is not None:
        edits += [(line, line.split(":")[0] + ": " + scrape_interval) for line in _INTERVAL_LINES]
    for old, new in edits:
        if text.count(old) != 1:
            raise PrometheusError(
                f"{template}: expected the line {old!r} exactly once, found it {text.count(old)} times"
            )
        text = text.replace(old, new)
    return f"# Rendered from {os.path.abspath(template)} by coordinator/tools/prometheus.py.\n" + text


def free_port(host: str = "127.0.0.1", preferred: int | None = None) -> int:
    """`preferred` if nobody listens there right now, else such a port chosen by the system (bind, read, close)."""
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            # As Prometheus (Go) binds: a port left in TIME_WAIT is free, one somebody listens on is not.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise AssertionError("unreachable: binding port 0 picks a free port")


class LocalPrometheus(Supervised):
    """A Prometheus child process scraping one local cluster. Use as a context manager, or start/stop."""

    def __init__(self, run_dir: str, targets: str, host: str = "127.0.0.1", port: int | None = None):
        """`port`: listen there if it is free (e.g. 9090, where the Grafana datasource looks), else on a
        free port."""
        self.run_dir = os.path.abspath(run_dir)
        self.targets = targets
        self.host = host
        self.port = port
        self.config_file = os.path.join(self.run_dir, "prometheus.yml")
        self.log_file = os.path.join(self.run_dir, "prometheus.log")
        self.address = ""
        self.proc: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self, timeout: float = 30.0, attempts: int = 3) -> None:
        binary = find_binary()
        os.makedirs(self.run_dir, exist_ok=True)
        with open(self.config_file, "w") as f:
            f.write(render_config(self.targets))
        storage = tempfile.mkdtemp(prefix="prometheus-tsdb-", dir=self.run_dir)
        self._log = open(self.log_file, "ab")  # noqa: SIM115 - the child's, closed by stop()
        for attempt in range(attempts):
            self.address = f"{self.host}:{free_port(self.host, self.port if attempt == 0 else None)}"
            proc = self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "coordinator.tools.die_with_parent", str(os.getpid())),
                    binary,
                    f"--config.file={self.config_file}",
                    f"--storage.tsdb.path={storage}",
                    f"--web.listen-address={self.address}",
                ],
                stdout=self._log,
                stderr=self._log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            if self._wait_ready(proc, time.monotonic() + timeout):
                return
            # Exited: most likely another process took the port between free_port and the bind.
        raise PrometheusError(
            f"prometheus did not start after {attempts} attempts (exit {proc.returncode}); see {self.log_file}"
        )

    def _wait_ready(self, proc: subprocess.Popen, deadline: float) -> bool:
        """True once /-/ready answers 200 from this Prometheus; False if `proc` exited; PrometheusError
        on timeout. Another Prometheus can answer on the address: one that was closing its listener
        when free_port found it free (seen in a test run: ours then exited, "address already in
        use"). Its --config.file, which the flags API gives, is not ours."""
        while True:
            if proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1.0) as r:
                    if r.status == 200 and self._serves_our_config():
                        return True
            except (urllib.error.URLError, OSError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise PrometheusError(f"prometheus at {self.address} not ready in time; see {self.log_file}")
            time.sleep(0.1)

    def _serves_our_config(self) -> bool:
        with urllib.request.urlopen(self.url + "/api/v1/status/flags", timeout=1.0) as r:
            return json.load(r)["data"].get("config.file") == self.config_file

    def stop(self, grace: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


class PrometheusApi:
    """Prometheus's HTTP API at `url` (http://HOST:PORT): a LocalPrometheus, or the one `cluster up
    --prometheus` printed."""

    def __init__(self, url: str):
        self.url = url

    def api(self, path: str, **params) -> dict:
        """GET /api/v1/<path>; the reply's `data`, or PrometheusError with Prometheus's error."""
        url = f"{self.url}/api/v1/{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=10.0) as r:
                doc = json.load(r)
        except urllib.error.HTTPError as err:
            doc = json.load(err)
        if doc.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {doc.get('errorType')}: {doc.get('error')}")
        return doc["data"]

    def query(self, expr: str) -> list:
        """An instant query's result (a list of {metric, value} for a vector)."""
        return self.api("query", query=expr)["result"]
