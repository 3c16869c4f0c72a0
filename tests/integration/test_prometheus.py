"""Monitoring end to end: `pcpsim cluster up --prometheus` with its defaults runs a real Prometheus that
scrapes the cluster through the file_sd targets file, evaluates the rules of deploy/prometheus, and
answers every recording rule and every Grafana panel query; promtool accepts every process's live
/metrics; `cluster up --prometheus` refuses to start without the binary.

One default cluster (housekeeping, housekeeping, isolated-preemptible, isolated-rt: compare's layout,
so a latency task runs on an isolated CPU and an RT CPU) and its Prometheus (deploy/prometheus's 5 s
scrape and evaluation interval) are shared by the module's tests; drains and an audit run
through the CLI, as a user would. Prometheus's first scrape lands ~5 s after it starts: everything here
polls Prometheus's HTTP API against a deadline.

Strategies: drains of workqueue and remote, the two a default cluster's CPUs run (kernel 6.1); an
rcu-swap drain needs CPUs started with `--strategy rcu-swap` (RCU list sets), and no panel or rule
reads rcu-swap alone. Triggers: demand drains feed every panel; none reads a cma, offline or
hotplug drain apart.
"""

import contextlib
import importlib.util
import json
import math
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest

from coordinator.tools import prometheus
from node.api.v1 import pcpsim_pb2 as pb
from node.shared.cpulist import role_label
from tests.integration.conftest import REPO, cluster_up, pid_alive, port_refuses, python_module, run_cli, wait_until

ROLES = ("housekeeping", "housekeeping", "isolated-preemptible", "isolated-rt")
DEADLINE_S = 90.0
DRAINS_PER_STRATEGY = 3


def load_dashboards():
    spec = importlib.util.spec_from_file_location(
        "pcpsim_grafana_generate", os.path.join(REPO, "deploy", "grafana", "generate.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def finite(result) -> list:
    return [r for r in result if math.isfinite(float(r["value"][1]))]


@contextlib.contextmanager
def cluster_up_prometheus(tmp_path, *flags):
    """`pcpsim cluster up --prometheus [flags]` (conftest.cluster_up); yields (Popen, state file path,
    Prometheus URL) once it printed the URL (after writing the state file). Prometheus gets SIGTERM
    when its parent dies (PR_SET_PDEATHSIG); the cluster's children watch their parent pid."""
    env = {k: v for k, v in os.environ.items() if k != "PCPSIM_STATE"}
    with cluster_up(tmp_path, "--prometheus", *flags, env=env) as up:

        def url():
            assert up.proc.poll() is None, f"cluster up exited {up.proc.returncode}: {up.output()}"
            found = re.search(r"^prometheus +(http://\S+)", up.out_path.read_text(), re.M)
            return found and found.group(1)

        yield up.proc, up.state_path, wait_until(url, 60.0, what="the Prometheus URL on stdout")


def stop_cluster_up(proc, pids: dict, prometheus_url: str) -> None:
    """SIGTERM `cluster up`: it exits 0, its Prometheus's port refuses connections and every pid of
    the cluster (`pids`, from the state file) is gone."""
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(30) == 0
    assert port_refuses(prometheus_url.removeprefix("http://"))
    assert not any(pid_alive(p) for p in pids.values())


@pytest.fixture(scope="module")
def monitored(tmp_path_factory):
    """(state file, PrometheusApi, targets file) for `pcpsim cluster up --prometheus` with no other flag.
    Its layout is compare's (ROLES). Drains of both strategies (`pcpsim drain --force-all-cpus`) and
    one `pcpsim audit` have run after Prometheus's first scrape of every process, so rates over them
    are not NaN. Every process is gone afterwards."""
    with cluster_up_prometheus(tmp_path_factory.mktemp("monitored")) as (proc, state, url):
        doc = json.loads(state.read_text())
        assert [role_label(pb.Role.Value(n["role"])) for n in doc["nodes"]] == list(ROLES)
        prom = prometheus.PrometheusApi(url)
        wait_until(
            lambda: len(prom.query('up{job=~"pcpsim-.*"} == 1')) == len(ROLES) + 1,
            DEADLINE_S,
            interval=0.5,
            what="Prometheus's first scrape of every process",
        )
        for strategy in ("workqueue", "remote"):
            for _ in range(DRAINS_PER_STRATEGY):
                r = run_cli("drain", "--strategy", strategy, "--force-all-cpus", "--json", "--state", str(state))
                assert r.returncode == 0 and json.loads(r.stdout)["status"] == "DONE", r.stdout + r.stderr
        r = run_cli("audit", "--state", str(state))
        assert r.returncode == 0 and r.stdout.startswith("audit ok"), r.stdout + r.stderr
        yield state, prom, prometheus.targets_file(str(state))
        stop_cluster_up(proc, doc["pids"], url)


def wait_all_answer(prom, exprs: dict, check=lambda result: bool(result)):
    """Poll until every query in `exprs` ({what: expr}) gives a result passing `check`; AssertionError
    listing the ones that did not by the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    pending = dict(exprs)
    while pending:
        pending = {what: expr for what, expr in pending.items() if not check(prom.query(expr))}
        if pending and time.monotonic() > deadline:
            raise AssertionError(
                f"after {DEADLINE_S}s, {len(pending)} of {len(exprs)} queries still answer "
                "nothing:\n" + "\n".join(f"  {w}: {e}" for w, e in sorted(pending.items()))
            )
        if pending:
            time.sleep(0.5)


def test_every_recording_rule_answers_and_evaluates_cleanly(monitored):
    """Prometheus loaded every recording and alerting rule; each recording rule yields data, and no rule
    reports an evaluation error."""
    _, prom, _ = monitored
    groups = prom.api("rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    records = sorted(r["name"] for r in rules if r["type"] == "recording")
    alerts = sorted(r["name"] for r in rules if r["type"] == "alerting")
    assert len(records) >= 15 and "cpu:pcpsim_task_wakeup_latency_seconds:p99_rate1m" in records
    assert {"PcpsimNodeDown", "PcpsimAuditFailed", "PcpsimDrainStalled", "PcpsimDeadlineMissesRising"} <= set(alerts)
    wait_all_answer(prom, {name: name for name in records})
    rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad, f"rules with evaluation errors: {bad}"


def test_every_grafana_panel_query_answers(monitored):
    """Every PromQL query of every Grafana panel returns data from the live cluster."""
    _, prom, _ = monitored
    queries = load_dashboards().queries("1m")
    wait_all_answer(prom, {f"{dash} / {title} #{i}": expr for i, (dash, title, expr) in enumerate(queries)})


def test_series_keep_their_labels_and_carry_the_drains_and_the_audit(monitored):
    """honor_labels keeps each series' own cpu label (no exported_cpu); the drains of both strategies give
    finite p99s, every CPU's wake-up latency p99 is there, the audit shows ok, nothing is alerting about
    nodes or the audit, and every scrape target is up."""
    _, prom, _ = monitored
    assert prom.query('count({exported_cpu!=""})') == []
    assert prom.query('count({exported_role!=""})') == []
    assert {r["metric"]["cpu"] for r in prom.query("pcpsim_pcp_count_pages")} == {"0", "1", "2", "3"}
    wait_all_answer(
        prom,
        {"drain p99 of both strategies": "strategy:pcpsim_drain_all_duration_seconds:p99_rate1m"},
        check=lambda r: {x["metric"]["strategy"] for x in finite(r)} == {"workqueue", "remote"},
    )
    wait_all_answer(
        prom,
        {"wake-up p99 of both isolated CPUs": "cpu:pcpsim_task_wakeup_latency_seconds:p99_rate1m"},
        check=lambda r: {x["metric"]["cpu"] for x in finite(r)} == {"2", "3"},
    )

    def drains_done() -> dict[str, float]:
        drains = prom.query('sum by (strategy) (pcpsim_drain_all_total{status="done"})')
        return {x["metric"]["strategy"]: float(x["value"][1]) for x in drains}

    # Children bound at start: the strategies this test never runs show 0.
    expected = {"workqueue": DRAINS_PER_STRATEGY, "remote": DRAINS_PER_STRATEGY, "rcu-swap": 0, "qpw": 0}
    # The counters reach Prometheus with its next scrape of the coordinator (every 5 s), which may come
    # after the p99 rule above already had a drain of each strategy to show.
    deadline = time.monotonic() + DEADLINE_S
    while drains_done() != expected and time.monotonic() < deadline:
        time.sleep(0.5)
    assert drains_done() == expected
    wait_all_answer(prom, {"audit ok": "pcpsim_audit_ok == 1 and pcpsim_audits_total >= 1"})
    assert prom.query('ALERTS{alertname=~"PcpsimNodeDown|PcpsimAuditFailed|PcpsimTargetDown"}') == []
    targets = prom.api("targets")["activeTargets"]
    assert len(targets) == len(ROLES) + 1
    assert all(t["health"] == "up" for t in targets), [(t["scrapeUrl"], t["lastError"]) for t in targets]


def test_promtool_accepts_every_live_metrics_endpoint(monitored):
    """`promtool check metrics` (lint included) accepts the /metrics text every process of the running
    cluster serves, process_* collectors and RPC series included."""
    _, _, targets = monitored
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not on PATH: install the Debian package `prometheus` (apt-get install prometheus)")
    with open(targets) as f:
        groups = json.load(f)
    assert len(groups) == len(ROLES) + 1
    for group in groups:
        for address in group["targets"]:
            with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as r:
                text = r.read()
            assert b"pcpsim_" in text
            proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=30)
            assert proc.returncode == 0, f"{group['labels']}: {proc.stdout.decode()}{proc.stderr.decode()}"


def test_cluster_up_prometheus_without_the_binary_exits_2_and_starts_nothing(tmp_path):
    """Without a `prometheus` binary on PATH, `cluster up --prometheus` says how to install it and exits 2
    before starting any process or writing any file."""
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PCPSIM_STATE"}
    env["PATH"] = str(empty)
    state, run_dir = tmp_path / "state" / "cluster.json", tmp_path / "run"
    proc = subprocess.run(
        python_module(
            "coordinator.tools.cli",
            "cluster",
            "up",
            "--nodes",
            "2",
            "--prometheus",
            "--state",
            str(state),
            "--run-dir",
            str(run_dir),
        ),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "apt-get install prometheus" in proc.stderr
    assert not state.parent.exists() and not run_dir.exists()
    assert "coordinator" not in proc.stdout


def test_cluster_up_prometheus_scrapes_the_cluster_and_stops_with_it(tmp_path):
    """`cluster up --prometheus` prints a Prometheus URL that scrapes every process of the cluster; on
    SIGTERM, Prometheus stops with the cluster (its port refuses connections, every pid is gone)."""
    with cluster_up_prometheus(tmp_path, "--nodes", "2") as (proc, state, base):
        pids = json.loads(state.read_text())["pids"]
        prom = prometheus.PrometheusApi(base)

        def all_up():
            result = prom.query('count(up{job=~"pcpsim-.*"} == 1)')
            return result and result[0]["value"][1] == "3"

        wait_until(all_up, DEADLINE_S, interval=0.5, what="Prometheus scraping the coordinator and both CPUs")
        stop_cluster_up(proc, pids, base)


def test_a_prometheus_that_is_not_ours_answering_on_the_address_is_not_taken_for_ours(tmp_path):
    """A real Prometheus (another run's) answers /-/ready on the address ours was given; ours (here a
    process that exits as a Prometheus that could not bind does) is not ready: _wait_ready says it
    exited, so start() tries another port, instead of returning with the other one's URL."""
    targets = str(tmp_path / "targets.json")
    with prometheus.LocalPrometheus(str(tmp_path / "other"), targets) as other:
        ours = prometheus.LocalPrometheus(str(tmp_path / "ours"), targets)
        ours.address = other.address
        failed_bind = subprocess.Popen(["sleep", "2"])
        assert ours._wait_ready(failed_bind, time.monotonic() + 60.0) is False
        assert other._wait_ready(other.proc, time.monotonic() + 60.0) is True
