"""`pcpsim compare --strategies ...rcu-swap`: the third strategy in the same JSON shape, on a short schedule."""

import json

import pytest

from coordinator.tools.compare import run_compare
from coordinator.tools.compare_plan import CompareConfig
from coordinator.tools.compare_table import format_table
from tests.integration.conftest import run_cli

SEED = 7


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> dict:
    run_dir = tmp_path_factory.mktemp("compare-rcu")
    return run_compare(
        CompareConfig(seed=SEED, measure_s=6, warmup_s=2, strategies=("remote", "rcu-swap")), str(run_dir)
    )


@pytest.mark.slow
def test_rcu_swap_phase_has_the_shape_of_the_others_and_its_grace_period(result):
    """The result has one phase per requested strategy, in the order asked, each with the same keys;
    rcu-swap's drains report their grace period (count = drains, max <= the longest drain), and its
    per-CPU data is there for reports."""
    assert list(result["strategies"]) == ["remote", "rcu-swap"]
    assert set(result["phases"]) == {"noise_floor", "remote", "rcu-swap"}
    remote, rcu = result["strategies"]["remote"], result["strategies"]["rcu-swap"]
    assert set(rcu) == set(remote)
    assert rcu["drain_all"]["count"] > 0
    assert rcu["grace_period"]["count"] == rcu["drain_all"]["count"]
    assert 0 < rcu["grace_period"]["max_s"] <= rcu["drain_all"]["max_s"]
    assert remote["grace_period"]["max_s"] == 0.0
    assert set(result["phases"]["rcu-swap"]["cpus"]) == {"2", "3"}
    table = format_table(result)
    assert "rcu grace period p99" in table and "rcu-swap" in table


@pytest.mark.slow
def test_rcu_swap_runs_no_drain_work_on_isolated_cpus_and_meets_no_trylock_failure(result):
    """Under rcu-swap neither isolated CPU ran a drain work item, no fast path anywhere failed a pcp
    trylock, no drain failed, and the audit is ok with nothing lost or duplicated."""
    rcu = result["strategies"]["rcu-swap"]
    assert rcu["isolated_preemptible"]["drain_work_items"] == 0
    assert rcu["isolated_rt"]["drain_work_items"] == 0
    assert rcu["pcp"]["trylock_failures"] == 0 and rcu["pcp"]["buddy_fallbacks"] == 0
    assert rcu["drain_all_failed"] == 0 and rcu["drain_rpc_errors"] == []
    assert rcu["audit"]["ok"] is True and rcu["audit"]["lost"] == 0 and rcu["audit"]["duplicated"] == 0


def test_compare_cli_rejects_an_unknown_strategy(tmp_path):
    """`pcpsim compare --strategies remote,rcu` is refused before any cluster starts, naming the known ones."""
    out = tmp_path / "out.json"
    r = run_cli("compare", "--strategies", "remote,rcu", "--json", str(out), timeout=60)
    assert r.returncode != 0 and "unknown strategy 'rcu'" in r.stderr and "rcu-swap" in r.stderr
    assert not out.exists()


def test_compare_cli_refuses_remote_under_5_19(tmp_path):
    """`pcpsim compare --kernel 5.19 --strategies workqueue,remote` is refused before any cluster starts:
    5.19's pcp has no lock another CPU can take."""
    out = tmp_path / "out.json"
    r = run_cli("compare", "--kernel", "5.19", "--strategies", "workqueue,remote", "--json", str(out), timeout=60)
    assert r.returncode != 0 and "kernel 5.19" in r.stderr and "local_lock" in r.stderr
    assert not out.exists()


@pytest.mark.slow
def test_cma_on_a_busy_machine_in_one_command(tmp_path):
    """`pcpsim compare --trigger-mix cma=1` makes every scheduled event a CMA allocation of a pageblock (its
    own alloc_contig drain) and its release, under each strategy: the results count those drains by trigger
    (no demand drain), time each whole operation that succeeded (`contig`; one fails only when a task's
    page is in its range, nothing being migrated), and every audit is ok."""
    out = tmp_path / "cma.json"
    r = run_cli(
        "compare",
        "--measure-s",
        "5",
        "--seed",
        str(SEED),
        "--strategies",
        "workqueue,rcu-swap",
        "--trigger-mix",
        "cma=1",
        "--json",
        str(out),
        "--run-dir",
        str(tmp_path / "run"),
        timeout=400,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["config"]["trigger_mix"] == {"cma": 1.0}
    for name, s in result["strategies"].items():
        assert s["drains_by_trigger"].get("alloc_contig", 0) > 0 and "demand" not in s["drains_by_trigger"], name
        contig = s["contig"]
        assert contig["count"] > 0 and contig["by_trigger"] == {"cma": contig["count"] + contig["failed"]}, name
        # Without migration a CMA range fails only when a task's page sits in it past the timeout.
        assert all("still in use (held by cpu" in e for e in contig["errors"]), contig["errors"]
        assert s["audit"]["ok"] is True, (name, s["audit"])
    assert "cma/offline ops ok p99" in r.stdout
