"""`pcpsim compare` end to end, on a short schedule: the structure of its results and the
claims that do not depend on timing."""

import json
import re

import pytest

from coordinator.tools.compare import run_compare
from coordinator.tools.compare_plan import CompareConfig
from node.tasks import NO_CAUSE, NOISE_CAUSES
from tests import browser
from tests.integration.conftest import run_cli

SEED = 7
DRAIN_ALL = {"count", "p50_s", "p99_s", "max_s"}
PREEMPTIBLE = {
    "wake_latency_p50_s",
    "wake_latency_p99_s",
    "wake_latency_max_s",
    "deadline_misses",
    "drain_work_items",
    "stolen_s",
}
RT = {"wake_latency_p99_s", "deadline_misses", "drain_work_items", "drain_wait_max_s", "stolen_s"}


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> dict:
    run_dir = tmp_path_factory.mktemp("compare")
    out = run_compare(CompareConfig(seed=SEED, measure_s=6, warmup_s=2), str(run_dir))
    json.loads(json.dumps(out))  # what --json writes must be plain JSON
    return out


def test_compare_result_has_every_documented_field(result):
    """The result names its seed and the noise floor, and for both strategies reports
    drain_all.{count,p50_s,p99_s,max_s}, the isolated preemptible and RT tasks' figures, pcp
    trylock failures and buddy fallbacks, and the audit (ok, lost, duplicated), all numeric; both
    tasks' stolen time by every cause, and their misses by cause."""
    assert result["seed"] == SEED
    assert isinstance(result["noise_floor"]["wake_latency_p99_s"], float)
    assert set(result["strategies"]) == {"workqueue", "remote"}
    for name, s in result["strategies"].items():
        assert set(s["drain_all"]) >= DRAIN_ALL, name
        assert set(s["isolated_preemptible"]) >= PREEMPTIBLE, name
        assert set(s["isolated_rt"]) >= RT, name
        assert {"trylock_failures", "buddy_fallbacks"} <= set(s["pcp"]), name
        assert {"ok", "lost", "duplicated"} <= set(s["audit"]), name
        for group, keys in (("drain_all", DRAIN_ALL), ("isolated_preemptible", PREEMPTIBLE), ("isolated_rt", RT)):
            for key in keys:
                value = s[group][key]
                assert isinstance(value, (int, float)) and value >= 0, (name, group, key, value)
        for group in ("isolated_preemptible", "isolated_rt"):  # every cause, zone_lock's from the zone replies
            by_cause = s[group]["stolen_by_cause_s"]
            assert set(by_cause) == set(NOISE_CAUSES), (name, group)
            assert sum(by_cause.values()) == pytest.approx(s[group]["stolen_s"]), (name, group)
            misses = s[group]["misses_by_cause"]  # each miss to one cause of NOISE_CAUSES, or none
            assert set(misses) <= {*NOISE_CAUSES, NO_CAUSE} and sum(misses.values()) == s[group]["deadline_misses"]


def test_compare_remote_never_runs_drain_work_on_isolated_cpus(result):
    """The point of the v6.0 series: under the remote strategy neither isolated CPU ran a single
    drain work item, while under the workqueue strategy both did."""
    remote, wq = result["strategies"]["remote"], result["strategies"]["workqueue"]
    assert remote["isolated_preemptible"]["drain_work_items"] == 0
    assert remote["isolated_rt"]["drain_work_items"] == 0
    assert wq["isolated_preemptible"]["drain_work_items"] > 0
    assert wq["isolated_rt"]["drain_work_items"] > 0


def test_compare_conserves_pages_and_uses_the_same_schedule(result):
    """Both strategies end with an audit that is ok with nothing lost or duplicated (and so does
    the noise-floor phase), no drain failed, and both ran the same number of drains (the same
    open-loop schedule, every drain waiting for the mutex rather than being skipped)."""
    strategies = result["strategies"]
    for name, s in strategies.items():
        assert s["audit"]["ok"] is True, (name, s["audit"])
        assert s["audit"]["lost"] == 0 and s["audit"]["duplicated"] == 0, name
        assert s["drain_all_failed"] == 0 and s["drain_rpc_errors"] == [], name
        assert s["drain_all"]["count"] > 0, name
    assert result["noise_floor"]["audit"]["ok"] is True
    assert strategies["remote"]["drain_all"]["count"] == strategies["workqueue"]["drain_all"]["count"]


def drained_latency_cpus(result: dict, name: str) -> set[str]:
    """The latency CPUs where the drain of `name`'s window did something: every one it marked under
    workqueue (a work item is queued on each); under remote, those it freed pages from."""
    w = result["phases"][name]["drain_window"]
    if name == "workqueue":
        return {str(c) for c in w["cpus_marked"]} & set(w["cpus"])
    return {c for c, pages in w["pages_drained"].items() if pages} & set(w["cpus"])


def test_compare_keeps_one_drain_window_per_strategy_with_the_events_of_each_latency_cpu(result):
    """phases.<strategy>.drain_window: one of the phase's drains, and on the latency CPUs it drained, what
    the strategy did there: under workqueue a drain work item ran on every CPU it marked, inside
    the window; under remote the drainer held the pcp lock of every CPU it freed pages from (a
    marked CPU whose lists were empty by then is not locked), and no drain work item ran. Every event
    overlaps the window, and the preemptible task's activations are there in both."""
    for name, kind_lane in (("workqueue", ("work", "workqueue")), ("remote", ("lock", "committed"))):
        w = result["phases"][name]["drain_window"]
        assert w["duration_s"] in result["strategies"][name]["drain_all"]["durations_s"], name
        assert w["from_s"] < 0 < w["duration_s"] < w["to_s"], (name, w)
        assert set(w["cpus"]) == {"2", "3"}, name
        drained = drained_latency_cpus(result, name)
        assert drained, (name, w["cpus_marked"], w["pages_drained"])
        for cpu in drained:
            events = w["cpus"][cpu]
            seen = {(e["lane"], e["kind"]) for e in events}
            assert kind_lane in seen, (name, cpu, seen)
            if name == "remote":
                assert ("work", "workqueue") not in seen, (name, cpu, seen)
            for e in events:
                assert e["start_s"] <= e["end_s"] and e["end_s"] >= w["from_s"] and e["start_s"] <= w["to_s"], e
        # cpu2's preemptible task wakes every 20 ms, and the window is at least 40 ms long
        assert any(e["lane"] == "task" for e in w["cpus"]["2"]), name
    assert "drain_window" not in result["phases"]["noise_floor"]


def test_compare_cli_rejects_a_bad_measure_time(tmp_path):
    """`pcpsim compare --measure-s 0` is refused before any cluster starts (non-zero exit, the
    problem named on stderr, no JSON written)."""
    out = tmp_path / "out.json"
    r = run_cli("compare", "--measure-s", "0", "--json", str(out), timeout=60)
    assert r.returncode != 0 and "--measure-s: must be in 1..86400, got 0" in r.stderr
    assert not out.exists()


def test_report_html_opens_in_chromium_with_every_figure_drawn(result, tmp_path):
    """`pcpsim report R --html OUT` on this compare's results: the page loads in headless Chromium
    with no console error or warning, and every figure holds data: a wake-up survival curve per
    phase for each latency CPU, a drain CDF per strategy with one point per drain, stolen-time
    bars, and per strategy a drain-window timeline with bars in the lanes the strategy fills (drain
    work items on the isolated CPUs under workqueue, the drainer's pcp lock holds under remote, the
    preemptible task's activations under both); the tables are there, and hovering a point shows
    its values. The screenshot is left in tmp_path (its path is printed)."""
    if reason := browser.chromium_missing():
        pytest.fail(reason)
    path, page_path = tmp_path / "results.json", tmp_path / "report.html"
    path.write_text(json.dumps(result))
    out = run_cli("report", str(path), "--html", str(page_path), "--no-plots")
    assert out.returncode == 0, out.stderr
    page = browser.open_page(str(page_path), str(tmp_path / "report.png"))
    assert browser.console_errors(page) == []
    charts = {c["title"]: c for c in page["charts"]}
    phases = ["noise_floor", "workqueue", "remote"]
    for cpu in ("2", "3"):
        wakeup = next(c for t, c in charts.items() if t.startswith(f"cpu{cpu} ") and "survival" in t)
        assert wakeup["series"] == len(phases) and all(n >= 2 for n in wakeup["paths"]), wakeup
    drain = charts["drain_all_pages duration CDF per strategy"]
    counts = sorted(s["drain_all"]["count"] for s in result["strategies"].values())
    # a staircase: two path points per drain but the first
    assert sorted((n + 1) // 2 for n in drain["paths"]) == counts, drain
    assert drain["dots"] == sum(counts)
    noise = next(c for t, c in charts.items() if t.startswith("Stolen time"))
    assert noise["bars"] > 0
    text = page["text"]
    assert "drain_all_pages p99" in text and "T: 0 (    2) P: 0" in text and "% CPU Aval" in text
    assert "No per-CPU timeline of a drain window" not in text
    for name, lane in (("workqueue", "work"), ("remote", "lock")):
        window = next(c for t, c in charts.items() if t.startswith(f"{name}: one drain window"))
        drained = drained_latency_cpus(result, name)
        assert window["bands"] == 1 and drained, window
        for cpu in drained:
            assert window["lanes"].get(f"cpu{cpu}-{lane}", 0) >= 1, (name, cpu, window["lanes"])
        assert window["lanes"].get("cpu2-task", 0) >= 1, (name, window["lanes"])
    # the first mark, cpu2's curves at 0 us, where every phase's curve starts (the last drawn on top)
    assert re.fullmatch(
        r"(noise_floor|workqueue|remote) \(n=\d+, max [\d.]+ us\): >= 0 us: 1\.0000 of wake-ups", page["hover"]
    )
