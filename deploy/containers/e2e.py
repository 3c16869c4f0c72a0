"""The Compose stack end to end, with podman-compose: `python deploy/containers/e2e.py --project NAME [--secure DIR]`.

Run by deploy/containers/test.sh (`make test-containers`), which installs podman and
podman-compose, builds the images, and tears the stack down afterwards whatever happens here.
In order, each step failing the run with the reason:

1. `podman-compose up -d` of deploy/compose.yaml (with --secure, also deploy/compose/secure.yaml
   and the secrets of DIR): coordinator, node0-node3 and Prometheus; Grafana is left out (a profile).
2. Every pcpsim container's health check says healthy; prints the seconds from `up` to then.
3. Prometheus scrapes every target (5 up, through its HTTP API).
4. From the host, with the real CLI (.venv/bin/pcpsim, --coordinator at the published port):
   drains of both strategies and an audit; with --secure, the same call without a token is refused
   (UNAUTHENTICATED), and one without a client certificate or in plain text does not get through.
   Every pcpsim container runs as uid 10001 with a read-only root filesystem.
5. Every recording rule of deploy/prometheus/rules returns data (the drains fed them).
6. A kill of node2's container (SIGKILL to its init from the host): it comes back (restart
   policy) as a new incarnation of CPU 2 (the coordinator's pcpsim_node_registrations_total
   for cpu 2 goes up, its log says cpu2 was replaced), healthy again, and the audit is balanced.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from coordinator.tools.prometheus import PrometheusApi, free_port

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PCPSIM = os.path.join(REPO, ".venv", "bin", "pcpsim")
PCPSIM_SERVICES = ("coordinator", "node0", "node1", "node2", "node3")
KILLED = "node2"  # CPU 2: the isolated preemptible task
DEADLINE_S = 120.0


def log(msg: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(
    cmd: list[str], check: bool = True, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)
    if check and r.returncode != 0:
        raise SystemExit(f"FAILED: {' '.join(cmd)} exited {r.returncode}\n{r.stdout}{r.stderr}")
    return r


def wait_until(what: str, probe, deadline_s: float = DEADLINE_S, interval: float = 1.0):
    """probe() until it returns something true; its last value. SystemExit naming `what` at the deadline."""
    end = time.monotonic() + deadline_s
    last_err = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except Exception as err:
            last_err = err
        if time.monotonic() > end:
            raise SystemExit(f"FAILED: after {deadline_s:.0f} s, still waiting for {what} (last error: {last_err})")
        time.sleep(interval)


class Stack:
    def __init__(self, project: str, secure: str | None):
        self.project, self.secure = project, secure
        self.coordinator_port, self.prometheus_port = free_port(), free_port()
        self.prom = PrometheusApi(f"http://127.0.0.1:{self.prometheus_port}")  # a failed call: PrometheusError
        self.env = {
            **os.environ,
            "PCPSIM_COORDINATOR_PORT": str(self.coordinator_port),
            "PCPSIM_PROMETHEUS_PORT": str(self.prometheus_port),
            "PCPSIM_PROMETHEUS_IMAGE": os.environ.get("PCPSIM_PROMETHEUS_IMAGE", "localhost/pcpsim-prometheus:2.42"),
        }
        files = ["-f", "deploy/compose.yaml"]
        if secure:
            self.env["PCPSIM_SECRETS"] = secure
            files += ["-f", "deploy/compose/secure.yaml"]
        self.compose = [os.environ.get("PODMAN_COMPOSE", "podman-compose"), "-p", project, *files]
        # The CLI gets its credentials from flags only: nothing from this shell's environment.
        self.cli_env = {k: v for k, v in os.environ.items() if not k.startswith("PCPSIM_")}

    # --- containers ---
    def container(self, service: str) -> str:
        ids = run(
            [
                "podman",
                "ps",
                "-a",
                "-q",
                "--filter",
                f"label=io.podman.compose.project={self.project}",
                "--filter",
                f"label=io.podman.compose.service={service}",
            ]
        ).stdout.split()
        if len(ids) != 1:
            raise SystemExit(f"FAILED: {len(ids)} containers for service {service}")
        return ids[0]

    def inspect(self, service: str) -> dict:
        return json.loads(run(["podman", "inspect", self.container(service)]).stdout)[0]

    def healthy(self, service: str) -> bool:
        """Runs the container's HEALTHCHECK now (podman runs it on a systemd timer, and there is no
        systemd here) and reads the status podman records from it."""
        cid = self.container(service)
        run(["podman", "healthcheck", "run", cid], check=False)
        state = self.inspect(service)["State"]
        health = state.get("Health") or state.get("Healthcheck") or {}
        return state.get("Running") and health.get("Status") == "healthy"

    # --- the CLI on the host ---
    def creds(self, token: bool = True, cert: bool = True) -> list[str]:
        if not self.secure:
            return []
        s = self.secure
        out = ["--tls-ca", f"{s}/ca.pem"]
        if cert:
            out += ["--tls-cert", f"{s}/pcpsim.pem", "--tls-key", f"{s}/pcpsim-key.pem"]
        if token:
            out += ["--token-file", f"{s}/operator.token"]
        return out

    def cli(self, *args: str, token: bool = True, cert: bool = True, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [PCPSIM, *args, "--coordinator", f"127.0.0.1:{self.coordinator_port}", *self.creds(token, cert)]
        return run(cmd, check=check, env=self.cli_env, timeout=120)

    def audit_ok(self) -> bool:
        r = self.cli("audit", check=False)
        return r.returncode == 0 and r.stdout.startswith("audit ok")


def said(r: subprocess.CompletedProcess) -> str:
    """The last line the CLI printed (its error), shortened."""
    lines = (r.stdout + r.stderr).strip().splitlines() or [""]
    return lines[-1][:160]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--project", required=True, help="Compose project name (test.sh tears it down)")
    p.add_argument("--secure", metavar="DIR", help="with deploy/compose/secure.yaml and the secrets in DIR")
    args = p.parse_args()
    st = Stack(args.project, os.path.abspath(args.secure) if args.secure else None)
    variant = "tokens+TLS" if args.secure else "plain"

    log(f"{variant}: podman-compose up (coordinator :{st.coordinator_port}, Prometheus :{st.prometheus_port})")
    t0 = time.monotonic()
    run([*st.compose, "up", "-d", "--no-build"], env=st.env)
    for service in PCPSIM_SERVICES:
        wait_until(f"{service} healthy", lambda s=service: st.healthy(s), interval=0.5)
    to_healthy = time.monotonic() - t0
    log(f"{variant}: every pcpsim container healthy {to_healthy:.1f} s after `up`")
    ro = {s: st.inspect(s)["HostConfig"].get("ReadonlyRootfs") for s in PCPSIM_SERVICES}
    assert all(ro.values()), f"read-only root filesystems: {ro}"
    users = {st.inspect(s)["Config"].get("User") for s in PCPSIM_SERVICES}
    assert users == {"10001:10001"}, users

    def targets_up():
        active = st.prom.api("targets")["activeTargets"]
        return len(active) == len(PCPSIM_SERVICES) and all(t["health"] == "up" for t in active) and active

    active = wait_until("Prometheus to scrape every target", targets_up)
    log(
        f"{variant}: Prometheus scrapes {len(active)} targets, all up: "
        + ", ".join(sorted(t["scrapeUrl"] for t in active))
    )

    if args.secure:
        r = st.cli("audit", token=False, check=False)
        assert r.returncode != 0 and "UNAUTHENTICATED" in r.stdout + r.stderr, r.stdout + r.stderr
        log(f"tokens+TLS: an audit without a token is refused: {said(r)}")
        r = st.cli("audit", cert=False, check=False)
        assert r.returncode != 0 and "audit ok" not in r.stdout, r.stdout + r.stderr
        log(f"tokens+TLS: an audit without a client certificate does not get through: {said(r)}")
        r = run(
            [
                PCPSIM,
                "audit",
                "--coordinator",
                f"127.0.0.1:{st.coordinator_port}",
                "--token-file",
                f"{args.secure}/operator.token",
            ],
            check=False,
            env=st.cli_env,
            timeout=120,
        )
        assert r.returncode != 0 and "audit ok" not in r.stdout, r.stdout + r.stderr
        log(f"tokens+TLS: an audit in plain text, with the token, does not get through: {said(r)}")

    for strategy in ("workqueue", "remote"):
        for _ in range(3):
            r = st.cli("drain", "--strategy", strategy, "--force-all-cpus", "--json")
            assert json.loads(r.stdout)["status"] == "DONE", r.stdout
    log(f"{variant}: 3 drains each of workqueue and remote from the host: DONE")
    r = st.cli("audit")
    assert r.stdout.startswith("audit ok"), r.stdout
    log(f"{variant}: {r.stdout.strip()}")

    groups = st.prom.api("rules")["groups"]
    records = sorted(r["name"] for g in groups for r in g["rules"] if r["type"] == "recording")
    assert len(records) >= 15, records
    pending = set(records)

    def rules_answer():
        pending.difference_update({name for name in list(pending) if st.prom.query(name)})
        return not pending

    try:
        wait_until("every recording rule to return data", rules_answer, deadline_s=90, interval=0.5)
    except SystemExit:
        raise SystemExit(f"FAILED: recording rules with no data: {sorted(pending)}") from None

    def finite_strategies(expr: str) -> set[str]:
        return {x["metric"]["strategy"] for x in st.prom.query(expr) if x["value"][1] not in ("NaN", "+Inf", "-Inf")}

    p99 = "strategy:pcpsim_drain_all_duration_seconds:p99_rate1m"
    wait_until(
        "drain p99s of both strategies", lambda: finite_strategies(p99) >= {"workqueue", "remote"}, deadline_s=90
    )
    log(f"{variant}: all {len(records)} recording rules return data; {p99} is finite for workqueue and remote")

    def registrations() -> float:
        [r] = st.prom.query(f'pcpsim_node_registrations_total{{cpu="{KILLED[-1]}"}}')
        return float(r["value"][1])

    before = wait_until("cpu2's registration count in Prometheus", registrations)
    restarts = st.inspect(KILLED).get("RestartCount", 0)
    started = st.inspect(KILLED)["State"]["StartedAt"]
    # SIGKILL to the container's init (pid 1 inside), from the host: the container dies with
    # 137 as on a crash or an OOM kill. Not `podman kill`: podman 4.3 counts that as a stop by
    # the user, which a restart policy leaves stopped.
    pid = st.inspect(KILLED)["State"]["Pid"]
    os.kill(pid, 9)
    t_kill = time.monotonic()
    log(f"{variant}: killed {KILLED}'s container (SIGKILL to its init, host pid {pid}; restarts so far {restarts})")
    wait_until(f"{KILLED} restarted", lambda: st.inspect(KILLED)["State"]["StartedAt"] != started, interval=0.5)
    wait_until(f"{KILLED} healthy again", lambda: st.healthy(KILLED), interval=0.5)
    t_back = time.monotonic() - t_kill
    after = wait_until("a new registration of cpu2 in Prometheus", lambda: registrations() > before and registrations())
    coordinator_log = run(["podman", "logs", st.container("coordinator")])
    logs = coordinator_log.stdout + coordinator_log.stderr
    assert f"cpu{KILLED[-1]} replaced" in logs, "the coordinator's log does not say cpu2 was replaced"
    wait_until("a balanced audit after the restart", st.audit_ok)
    log(
        f"{variant}: {KILLED} back and healthy {t_back:.1f} s after the kill, a new incarnation "
        f"(registrations {before:.0f} -> {after:.0f}; coordinator: cpu{KILLED[-1]} replaced); audit ok"
    )
    print(f"RESULT {variant} healthy_s={to_healthy:.1f} restart_s={t_back:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
