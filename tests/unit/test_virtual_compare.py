"""`pcpsim compare --engine virtual` (coordinator.tools.virtual_compare): every phase under virtual time in
compare's results file, the flags virtual time cannot honour refused before anything runs, compare's
acceptance claims (coordinator.tools.acceptance) and the table in kernel time."""

import copy
import json

import pytest

from coordinator.tools import acceptance, compare_table, results_file, virtual_compare, virtual_phase
from coordinator.tools.cli import main
from coordinator.tools.compare_plan import CompareConfig
from coordinator.tools.compare_results import results_json
from coordinator.tools.virtual_cluster import machine_roles
from coordinator.tools.virtual_compare import VirtualCompare, check_determinism, run_virtual_compare
from coordinator.tools.virtual_phase import default_config, run_phase
from node.tasks import NOISE_CAUSES
from tests.leaks import forbid_wall_clock_and_shared_random

# 2.5 s of compare's wall-time measurement stand for 10 ms of kernel time; a drain every 600 us on average.
SHORT = {"measure_s": 2.5, "warmup_s": 0.5}
STRATEGIES = ("workqueue", "remote", "rcu-swap", "qpw")


@pytest.fixture(scope="module")
def result() -> dict:
    with pytest.MonkeyPatch.context() as mp:
        forbid_wall_clock_and_shared_random(mp)
        return run_virtual_compare(CompareConfig(seed=3, strategies=STRATEGIES, **SHORT)).results


def test_a_virtual_compare_is_a_compare_results_file_in_kernel_time_with_nothing_of_the_host(result):
    results_file.validate(result)  # `pcpsim report` reads it
    assert list(result["phases"]) == ["noise_floor", *STRATEGIES]
    assert list(result["strategies"]) == list(STRATEGIES) and list(result["events"]) == list(result["phases"])
    assert result["time_scale"] == result["config"]["costs"]["time_scale"] == 1.0
    assert result["engine"] == "virtual" and "run_dir" not in result
    assert result["noise_floor"]["audit"]["ok"] is True
    assert "drain_window" not in result["phases"]["noise_floor"]
    for name in STRATEGIES:  # compare's drain window, in kernel seconds from the drain's start
        window = result["phases"][name]["drain_window"]
        assert window["from_s"] < 0 < window["duration_s"] < window["to_s"] < 1e-3, name
        assert window["cpus"] and any(window["cpus"].values()), name  # the latency CPUs, each a lane list
    for name, figures in result["strategies"].items():
        assert figures["drain_all"]["count"] > 10 and figures["drain_all_failed"] == 0, name
        assert figures["audit"] == {"ok": True, "lost": 0, "duplicated": 0, "unexpected": 0, "errors": []}, name
    json.loads(results_json(result))  # plain JSON


def test_the_noise_floor_drains_nothing_and_only_workqueue_runs_work_on_isolated_cpus(result):
    assert result["events"]["noise_floor"] > 0
    claims = {c.text: c for c in acceptance.claims(result)}
    for name in ("remote", "rcu-swap", "qpw"):
        assert claims[f"no drain work on isolated CPUs under {name}"].held
    wq = result["strategies"]["workqueue"]
    assert wq["isolated_preemptible"]["drain_work_items"] > 0 and wq["isolated_rt"]["drain_work_items"] > 0


def test_the_table_shows_kernel_time_only(result):
    table = compare_table.format_table(result)
    assert "(virtual time: every time is kernel time)" in table and " ms " not in table
    assert table.splitlines()[-1] == "4 CPUs: 2 housekeeping, 1 isolated-preemptible, 1 isolated-rt"
    assert table.splitlines()[0].split()[2:] == list(STRATEGIES)


def test_the_table_gives_each_tasks_misses_by_cause_and_its_zone_lock_share(result):
    by_cause = [cells for label, cells in compare_table.table_rows(result) if label.strip() == "by what stole the most"]
    assert len(by_cause) == 2  # one row under each task's misses
    for n, name in enumerate(result["strategies"]):
        pre = result["strategies"][name]["isolated_preemptible"]
        assert sum(pre["misses_by_cause"].values()) == pre["deadline_misses"]
        assert by_cause[0][n] == (compare_table.misses_cell(pre["misses_by_cause"]) if pre["deadline_misses"] else "-")
        assert set(pre["stolen_by_cause_s"]) == set(NOISE_CAUSES)
    cell = compare_table.misses_cell
    assert cell({"none": 2, "zone_lock": 112}) == "zone_lock 112, none 2"
    assert cell({"other": 1, "workqueue": 95, "zone_lock": 36, "none": 2}) == "workqueue 95, zone_lock 36 +3"
    assert cell({"other": 2, "workqueue": 30, "zone_lock": 112}) == "zone_lock 112 +32"  # 30 wide with workqueue 30


def test_the_check_runs_twice_and_logs_every_phase_in_order(monkeypatch):
    forbid_wall_clock_and_shared_random(monkeypatch)
    check = check_determinism(CompareConfig(seed=2, strategies=("remote",), measure_s=0.5, warmup_s=0.25))
    assert check.identical, check.describe()
    events = check.first.events
    assert events.startswith("phase noise_floor\n") and events.index("\nphase remote\n") > 0
    assert json.loads(check.first.results)["strategies"]["remote"]["audit"]["ok"] is True


def test_the_cli_names_the_first_divergent_event_and_exits_1(result, monkeypatch, capsys):
    """Two runs whose logs differ at line 2 (stand-ins for a determinism break): both digests kinds
    printed, the divergent line named, exit 1, though every audit is clean."""
    logs = iter(["phase noise_floor\n0.0 cpu0 step a\n", "phase noise_floor\n0.0 cpu0 step b\n"])
    monkeypatch.setattr(
        virtual_compare, "run_virtual_compare", lambda config, keep_log, noise: VirtualCompare(result, next(logs))
    )
    assert main(["compare", "--engine", "virtual", "--check-determinism"]) == 1
    out = capsys.readouterr().out
    assert "results sha256 " in out and "event log sha256 " in out
    assert "the runs diverge: event log line 2: first run '0.0 cpu0 step a', second run '0.0 cpu0 step b'" in out


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        (["--run-dir", "RUN"], "starts no processes"),
        (["--kernel", "5.19", "--strategies", "remote"], "cannot run under it"),  # compare's own check first
        (["--kernel", "5.19", "--strategies", "workqueue,qpw"], "so qpw cannot run under it"),
        # Before 2026-12-06 these ran, and their claims were judged on one drain or none.
        (["--measure-s", "1", "--drain-interval-ms", "5000"], "a drain every 5000 ms on average schedules none"),
        (["--drain-interval-ms", "999999999999999"], "--drain-interval-ms: must be in 1..86400000"),
    ],
)
def test_what_virtual_time_cannot_honour_is_refused_before_anything_runs(flags, problem, tmp_path, capsys):
    out = tmp_path / "out.json"
    try:
        code = main(["compare", "--engine", "virtual", "--json", str(out), *flags])
    except SystemExit as exit_:  # the parser's own refusal
        code = exit_.code
    assert code == 2
    assert problem in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "RUN").exists()


def test_a_compare_on_a_machine_of_32_cpus_drains_only_the_cpus_with_pages(capsys):
    """`--cpus 32`: two housekeeping CPUs, one of each latency task, 28 idle CPUs whose lists stay empty,
    so no drain visits them (cpus_with_pcps) and the claims about isolated CPUs hold as on 4 CPUs."""
    assert main(["compare", "--engine", "virtual", "--cpus", "32", "--strategies", "workqueue,remote",
                 "--measure-s", "2", "--seed", "3"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "held   no drain work on isolated CPUs under remote" in out and "every audit clean" in out
    assert "events over 32 CPUs in" in out and "peak RSS" in out
    roles = machine_roles(32)
    run = run_phase("workqueue", default_config("workqueue", 3, roles=tuple(roles), **SHORT))
    assert run.figures["audit"]["ok"] and run.figures["drain_all"]["count"] > 10
    items = [cpu.drain_work_items for cpu in run.cluster.nodes.cpus]
    assert all(items[n] > 0 for n, role in enumerate(roles) if role != "idle"), items
    assert not any(items[n] for n, role in enumerate(roles) if role == "idle"), items


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        (["--cpus", "64"], "--cpus needs --engine virtual"),
        (["--cpus", "64", "--engine", "virtual", "--workload", "deploy/rt-app/default.json"], "not both"),
        (["--cpus", "16", "--engine", "virtual"], "at least 32 CPUs"),
        (["--cpus", "100000000", "--engine", "virtual"], "at most 1024 CPUs, got 100000000"),
    ],
)
def test_a_machine_size_it_cannot_lay_out_is_refused_before_anything_runs(flags, problem, tmp_path, capsys):
    out = tmp_path / "out.json"
    assert main(["compare", "--json", str(out), *flags]) == 2
    assert problem in capsys.readouterr().err
    assert not out.exists()


def test_drains_the_schedule_outran_end_the_command_with_a_clear_error(monkeypatch, tmp_path, capsys):
    """A schedule faster than its drains end (on 1,024 CPUs, compare's own: docs/engine.md) leaves drains
    queued past the phase's bound; here the bound is 0 and a drain is asked every 4 us of kernel time."""
    monkeypatch.setattr(virtual_phase, "DRAIN_BOUND_S", 0.0)
    out = tmp_path / "out.json"
    args = ["--strategies", "remote", "--measure-s", "1", "--drain-interval-ms", "1", "--json", str(out)]
    assert main(["compare", "--engine", "virtual", *args]) == 2
    err = capsys.readouterr().err
    assert "scheduled drains had not ended 0s of kernel time after the measurement" in err, err
    assert "a longer --drain-interval-ms spaces them" in err and "Traceback" not in err
    assert not out.exists()


def test_an_audit_that_cannot_end_ends_the_command_with_a_clear_error(tmp_path, capsys):
    """A cost model whose zone->lock hold outlasts the closing audit's bound (a second a hold, the file's
    largest): before 2026-12-06 a RuntimeError traceback."""
    costs = tmp_path / "costs.toml"
    costs.write_text("zone_lock_us = 1e6\n")
    out = tmp_path / "out.json"
    args = ["--strategies", "remote", "--measure-s", "1", "--cost-model", str(costs), "--json", str(out)]
    assert main(["compare", "--engine", "virtual", *args]) == 2
    err = capsys.readouterr().err
    assert "pcpsim: error: the audit had not ended by virtual time" in err, err
    assert "one CPU or zone->lock was held past it" in err and "Traceback" not in err
    assert not out.exists()


def test_an_unknown_noise_model_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--engine", "virtual", "--noise", "loud"])
    assert "invalid choice: 'loud'" in capsys.readouterr().err


def test_noise_is_refused_under_the_wall_engine(tmp_path, capsys):
    out = tmp_path / "out.json"
    assert main(["compare", "--noise", "none", "--json", str(out)]) == 2
    assert "--noise needs --engine virtual" in capsys.readouterr().err
    assert not out.exists()


def test_the_noise_model_gives_the_noise_floor_a_value_and_none_takes_it_away(result):
    """With the default model (quiet) every isolated task's wake-ups come late by the timer slack's draws,
    so the noise floor is above 0; with none, an isolated task that nothing delays wakes on time."""
    assert result["noise"] == "quiet" and result["noise_floor"]["wake_latency_p99_s"] > 0
    assert result["strategies"]["remote"]["isolated_preemptible"]["wake_latency_p99_s"] > 0
    none = run_virtual_compare(CompareConfig(seed=3, strategies=("remote",), **SHORT), noise="none").results
    assert none["noise"] == "none" and none["noise_floor"]["wake_latency_p99_s"] == 0.0
    assert none["strategies"]["remote"]["isolated_preemptible"]["wake_latency_p99_s"] == 0.0


def test_the_quiet_hosts_noise_is_the_default_and_gives_a_lower_floor_than_the_loaded_hosts(tmp_path):
    """The quiet host's table (node.sim.noise.COMPARE_DEFAULT) is what the command line runs when no
    `--noise` is named, and is written in the results; on the same seed its floor is below that of
    `--noise model`, the loaded host's table."""
    out = tmp_path / "quiet.json"
    assert main(["compare", "--engine", "virtual", "--seed", "3", "--strategies", "remote",
                 "--measure-s", "2", "--json", str(out)]) in (0, 1)  # fmt: skip
    quiet = json.loads(out.read_text())
    loaded_out = tmp_path / "loaded.json"
    assert main(["compare", "--engine", "virtual", "--noise", "model", "--seed", "3", "--strategies", "remote",
                 "--measure-s", "2", "--json", str(loaded_out)]) in (0, 1)  # fmt: skip
    loaded = json.loads(loaded_out.read_text())
    assert quiet["noise"] == "quiet" and loaded["noise"] == "model"
    assert 0.0 < quiet["noise_floor"]["wake_latency_p99_s"] < loaded["noise_floor"]["wake_latency_p99_s"]


def test_check_determinism_is_refused_under_the_wall_engine(tmp_path, capsys):
    out = tmp_path / "out.json"
    assert main(["compare", "--check-determinism", "--json", str(out)]) == 2
    assert "--check-determinism needs --engine virtual" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ([], "--event-log needs --engine virtual"),
        (
            ["--engine", "virtual", "--json", "/nonexistent-dir/r.json"],
            "--json /nonexistent-dir/r.json: /nonexistent-dir",
        ),
    ],
)
def test_a_bad_event_log_request_writes_nothing(tmp_path, capsys, extra, said):
    log = tmp_path / "events.log"
    assert main(["compare", "--event-log", str(log), *extra]) == 2
    assert said in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_event_log_path_in_no_writable_directory_is_refused_before_anything_runs(capsys):
    assert main(["compare", "--engine", "virtual", "--event-log", "/nonexistent-dir/events.log"]) == 2
    assert "--event-log /nonexistent-dir/events.log: /nonexistent-dir is not a directory" in capsys.readouterr().err


def figures(wq_p99: float, remote_p99: float, floor: float, wq_max: float, remote_max: float) -> dict:
    """A two-strategy results file with only what the claims read; drain spread (p99/p50) 5 and 2."""

    def strategy(p99: float, max_s: float, work: int, spread: float) -> dict:
        return {
            "isolated_preemptible": {"wake_latency_p99_s": p99, "drain_work_items": work},
            "isolated_rt": {"drain_work_items": work},
            "drain_all": {"p50_s": max_s / 10, "p99_s": max_s / 10 * spread, "max_s": max_s},
            "audit": {"ok": True, "lost": 0, "duplicated": 0},
        }

    return {
        "time_scale": 1.0,
        "noise_floor": {"wake_latency_p99_s": floor, "audit": {"ok": True, "lost": 0, "duplicated": 0}},
        "strategies": {
            "workqueue": strategy(wq_p99, wq_max, 5, spread=5.0),
            "remote": strategy(remote_p99, remote_max, 0, spread=2.0),
        },
    }


def test_each_claim_fails_on_its_own_figures_and_zero_figures_compare_without_dividing():
    held = acceptance.claims(figures(30e-6, 3e-6, 2e-6, 600e-6, 30e-6))
    assert [c.held for c in held] == [True] * 6
    assert all(c.held for c in acceptance.claims(figures(0.0, 0.0, 0.0, 600e-6, 30e-6)))
    failed = figures(8e-6, 3e-6, 1e-6, 50e-6, 30e-6)
    failed["strategies"]["remote"]["drain_all"]["p99_s"] = 29e-6  # spread 9.7 against workqueue's 5
    failed["strategies"]["remote"]["isolated_rt"]["drain_work_items"] = 1
    failed["noise_floor"]["audit"] = {"ok": False, "lost": 1, "duplicated": 0}
    assert [c.held for c in acceptance.claims(failed)] == [False] * 6
    text = acceptance.format_claims(acceptance.claims(failed))
    assert "FAILED every audit clean" in text and "dirty: noise_floor" in text and "1 work items" in text


def test_claims_about_a_strategy_the_results_lack_are_left_out():
    only_remote = copy.deepcopy(figures(30e-6, 3e-6, 2e-6, 600e-6, 30e-6))
    del only_remote["strategies"]["workqueue"]
    assert [c.text for c in acceptance.claims(only_remote)] == [
        "preemptible wake p99: remote <= 2x the noise floor",
        "no drain work on isolated CPUs under remote",
        "every audit clean",
    ]


def test_claims_about_the_preemptible_task_are_left_out_where_the_task_set_has_none():
    """An rt-app set of RT tasks only (deploy/rt-app/cyclictest-1khz.json) has no preemptible task: its
    noise floor's p99 is None and no strategy has isolated_preemptible. The claims used to raise KeyError."""
    rt_only = copy.deepcopy(figures(30e-6, 3e-6, 2e-6, 600e-6, 30e-6))
    rt_only["noise_floor"]["wake_latency_p99_s"] = None
    for s in rt_only["strategies"].values():
        del s["isolated_preemptible"]
    rt_only["strategies"]["remote"]["isolated_rt"]["drain_work_items"] = 2
    found = acceptance.claims(rt_only)
    assert [(c.text, c.held) for c in found] == [
        ("drain_all_pages max: workqueue >= 2x remote", True),
        ("drain p99/p50: remote < workqueue", True),
        ("no drain work on isolated CPUs under remote", False),
        ("every audit clean", True),
    ]


def test_a_phase_lists_direct_reclaims_drains_as_the_wall_phases_drain_history_does(monkeypatch):
    """The wall phase reads the coordinator's DrainHistory, reset after the warmup, which lists every
    drain_all_pages that ends after it: direct reclaim's (trigger reclaim) beside compare's own. On a
    zone the rest of the system leaves 300 pages above min, the CPUs' refills keep reaching it."""
    forbid_wall_clock_and_shared_random(monkeypatch)
    whole = virtual_phase.WholeCluster

    def low(*args, **kwargs):
        cluster = whole(*args, **kwargs)
        zone = cluster.nodes.zone.zone
        cluster.nodes.zone.rules.preallocate(zone.free_pages - zone.watermark["min"] - 300)
        return cluster

    monkeypatch.setattr(virtual_phase, "WholeCluster", low)
    config = default_config("remote", seed=5, measure_s=2.0, warmup_s=1.0)
    run = run_phase("remote", config, keep_log=False, noise="none")
    by_trigger = run.figures["drains_by_trigger"]
    ended_after_warmup = [
        r for r in run.cluster.reclaim_drains if r.started_at + r.duration_s >= virtual_phase.kernel_s(config.warmup_s)
    ]
    assert by_trigger["reclaim"] == len(ended_after_warmup) > 0
    assert len(run.cluster.reclaim_drains) > len(ended_after_warmup)  # the warmup's are not the phase's
    assert by_trigger["demand"] > 0 and run.figures["audit"]["ok"]
