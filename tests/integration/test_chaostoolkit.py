"""The Chaos Toolkit experiments of deploy/chaostoolkit/, run as a user runs them: the real
`chaos run` against a real `pcpsim cluster up`, then the journal it writes is read."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from coordinator.tools.chaostoolkit import actions, probes
from tests.integration.conftest import REPO, cluster_up, pid_alive, wait_until

EXPERIMENTS = os.path.join(REPO, "deploy", "chaostoolkit")
CHAOS = shutil.which("chaos", path=os.path.dirname(sys.executable))


@pytest.fixture(scope="module")
def ctk_cluster(tmp_path_factory):
    """`pcpsim cluster up` in its default layout (cpu3 the isolated RT CPU); yields (state path,
    the path of its stdout)."""
    with cluster_up(tmp_path_factory.mktemp("ctk")) as up:
        yield up.state_path, up.out_path


def chaos_run(state, experiment: str, tmp_path, **env) -> tuple[int, dict]:
    assert CHAOS, "the chaos command is installed with pcpsim's chaos extra"
    journal = tmp_path / f"journal-{experiment}"
    r = subprocess.run(
        [CHAOS, "run", "--journal-path", str(journal), os.path.join(EXPERIMENTS, experiment)],
        env=dict(os.environ, PCPSIM_STATE=str(state), **env),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert journal.exists(), r.stdout + r.stderr
    return r.returncode, json.loads(journal.read_text())


def outputs(journal: dict, phase: str) -> dict:
    return {p["activity"]["name"]: p["output"] for p in journal["steady_states"][phase]["probes"]}


def test_a_killed_cpu_comes_back_with_nothing_lost(ctk_cluster, tmp_path):
    state, up_out = ctk_cluster
    pid_before = json.loads(state.read_text())["node_pids"]["1"]
    rc, journal = chaos_run(state, "cpu-killed.json", tmp_path)
    assert rc == 0, journal
    assert journal["status"] == "completed" and not journal["deviated"]
    assert journal["steady_states"]["before"]["steady_state_met"]
    assert outputs(journal, "before") == {"all-cpus-up": 4, "audit-balanced": True}
    kill, drain = journal["run"]
    assert kill["status"] == "succeeded" and drain["status"] == "succeeded", journal["run"]
    assert kill["output"]["pid"] == pid_before
    assert kill["output"]["new_incarnation"] != kill["output"]["incarnation"]
    assert drain["output"]["status"] == "DONE"
    assert journal["steady_states"]["after"]["steady_state_met"]
    assert outputs(journal, "after") == {"all-cpus-up": 4, "audit-balanced": True}
    assert [r["status"] for r in journal["rollbacks"]] == ["succeeded"]
    # cluster up started the CPU again and the state file names its new process.
    assert not pid_alive(pid_before)
    wait_until(lambda: json.loads(state.read_text())["node_pids"]["1"] != pid_before, 10.0, what="the new pid")
    assert "cpu1-restart1: started again" in open(up_out).read()


def test_rt_cpu_steady_state_holds_under_remote_and_deviates_under_workqueue(ctk_cluster, tmp_path):
    state, _ = ctk_cluster
    rc, remote = chaos_run(state, "rt-cpu-steady-state.json", tmp_path, PCPSIM_DRAIN_STRATEGY="remote")
    assert rc == 0, remote
    assert remote["status"] == "completed" and not remote["deviated"]
    assert outputs(remote, "after")["no-work-on-rt-cpu"] == 0
    assert remote["rollbacks"][0]["output"].get("DONE", 0) > 0  # the drains ran while it was checked

    rc, wq = chaos_run(state, "rt-cpu-steady-state.json", tmp_path, PCPSIM_DRAIN_STRATEGY="workqueue")
    assert rc != 0
    assert wq["steady_states"]["before"]["steady_state_met"]
    assert wq["deviated"] and not wq["steady_states"]["after"]["steady_state_met"]
    assert outputs(wq, "after")["no-work-on-rt-cpu"] > 0  # kworker items ran on the isolated RT CPU
    assert wq["rollbacks"][0]["status"] == "succeeded" and wq["rollbacks"][0]["output"].get("DONE", 0) > 0


@pytest.mark.parametrize(
    ("call", "kwargs", "message"),
    [
        (actions.kill_cpu, {"cpu": 9}, "cpu: the cluster has CPUs [0, 1, 2, 3], not 9"),
        (actions.stop_cpu, {"cpu": "2"}, "cpu: expected a whole number"),
        (actions.slow_cpu, {"cpu": 2, "factor": 0}, "factor: must be in [1, 1000]"),
        (actions.drain, {"strategy": "fast"}, "strategy: expected one of workqueue, remote, rcu-swap"),
        (actions.start_drains, {"strategy": "remote", "interval_ms": 0}, "interval_ms: must be >= 1"),
        (actions.cma_alloc, {"pages": -512}, "pages: must be >= 1"),
        (probes.wake_p99_ms, {"cpu": 0}, "cpu: cpu0 runs no latency task"),
        (probes.drain_p99_ms, {"window_s": 0}, "window_s: must be in [0.1, 600]"),
    ],
)
def test_bad_arguments_are_refused_naming_the_argument(ctk_cluster, call, kwargs, message):
    state, _ = ctk_cluster
    pids = json.loads(state.read_text())["node_pids"]
    with pytest.raises(ValueError) as err:
        call(**kwargs, configuration={"pcpsim_state": str(state)})
    assert message in str(err.value)
    assert json.loads(state.read_text())["node_pids"] == pids and all(pid_alive(p) for p in pids.values())
    assert probes.cpus_up(configuration={"pcpsim_state": str(state)}) == 4


def test_a_missing_state_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no cluster state file"):
        probes.audit_balanced(configuration={"pcpsim_state": str(tmp_path / "none.json")})
