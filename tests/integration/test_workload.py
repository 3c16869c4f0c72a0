"""`--workload FILE`: rt-app task sets drive real clusters. `pcpsim compare --workload` runs with
each shipped set, and every task it describes runs on the CPUs it names, with its period and role
(as each node reports them); a bad set is a CLI error before anything starts."""

import hashlib
import json
import pathlib

import pytest

from coordinator.tools import acceptance
from node import rtapp
from tests.integration.conftest import REPO, run_cli

SHIPPED = sorted((pathlib.Path(REPO) / "deploy" / "rt-app").glob("*.json"))
MEASURE_S = 3


@pytest.mark.slow
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_compare_runs_each_shipped_task_set(path, tmp_path):
    out = tmp_path / "result.json"
    r = run_cli(
        "compare",
        "--workload",
        str(path),
        "--measure-s",
        str(MEASURE_S),
        "--strategies",
        "remote",
        "--json",
        str(out),
        "--run-dir",
        str(tmp_path / "run"),
        timeout=240,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(out.read_text())
    with open(path, "rb") as f:  # named by its contents, not by the host's path
        assert result["config"]["workload"] == {"file": path.name, "sha256": hashlib.sha256(f.read()).hexdigest()}
    workload = rtapp.load(path)
    for phase in ("noise_floor", "remote"):
        cpus = result["phases"][phase]["cpus"]
        assert sorted(int(c) for c in cpus) == workload.cpus, (phase, cpus)
        for task in workload.tasks:
            for cpu in task.cpus:
                d = cpus[str(cpu)]
                assert d["role"] == task.role, (phase, cpu, d["role"])
                assert d["period_s"] == pytest.approx(task.period_s), (phase, cpu)
                # It ran all along: at least half the periods the measurement lasted.
                assert d["runs"] >= MEASURE_S / task.period_s / 2, (phase, cpu, d["runs"])
    assert result["strategies"]["remote"]["audit"]["ok"]
    # The wall engine prints compare's claims after its table, as the virtual one does: those of its results.
    printed = acceptance.format_claims(acceptance.claims(result))
    assert "no drain work on isolated CPUs under remote" in printed and printed in r.stdout


BAD = {"tasks": {"t": {"cpus": [2], "run": 1000, "timer": {"ref": "unique", "period": 0}}}}


@pytest.mark.parametrize("command", [["compare", "--measure-s", "1"], ["cluster", "up"]])
def test_a_bad_task_set_is_refused_before_anything_starts(command, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(BAD))
    run_dir, state = tmp_path / "run", tmp_path / "state.json"
    extra = ["--state", str(state)] if command[0] == "cluster" else []
    r = run_cli(*command, "--workload", str(bad), "--run-dir", str(run_dir), *extra, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"{bad}: tasks.t.timer.period: must be >= 1" in r.stderr
    assert not run_dir.exists() and not state.exists()


def test_cluster_up_refuses_a_workload_with_a_layout(tmp_path):
    r = run_cli(
        "cluster",
        "up",
        "--workload",
        str(SHIPPED[0]),
        "--isolated",
        "2",
        "--run-dir",
        str(tmp_path / "run"),
        timeout=60,
    )
    assert r.returncode != 0 and "without --isolated/--rt" in r.stderr, r.stderr
    assert not (tmp_path / "run").exists()
