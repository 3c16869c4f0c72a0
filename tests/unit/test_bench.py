"""pcpsim bench's pure logic: ratios, target evaluation, the line fit, the JSON and table shapes.

Nothing here measures or asserts a wall-clock time."""

import json
import math

import pytest

from coordinator.tools.bench import engine
from coordinator.tools.bench.figure import (
    Figure,
    finite,
    format_table,
    linear_fit,
    meets,
    parse_target,
    ratio,
    result_json,
    write_json,
)
from node.virtual.run import VirtualCluster


def test_ratio_is_value_over_floor_and_a_zero_floor_is_not_a_number():
    assert ratio(30.0, 2.0) == 15.0
    assert math.isinf(ratio(1.0, 0.0))
    assert math.isnan(ratio(0.0, 0.0))


@pytest.mark.parametrize(
    "target,value,ok",
    [
        ("<= 15", 15.0, True),
        ("<= 15", 15.01, False),
        ("<=1.1", 1.0, True),
        ("<= 4x", 4.5, False),
        (">= 0.5", 0.5, True),
        (">= 0.5", 0.49, False),
        (">=0.5x", 2.0, True),
        ("<= 15", math.inf, False),
        ("<= 15", math.nan, False),
        (">= 0.5", math.nan, False),
    ],
)
def test_a_ratio_meets_its_bound(target, value, ok):
    assert meets(value, target) is ok


def test_no_target_is_informational():
    assert meets(3.0, None) is None
    assert Figure("x", 3.0, 1.0, "s").ok is None


@pytest.mark.parametrize("bad", ["< 15", "15", "== 1", "about 4"])
def test_a_target_is_a_bound(bad):
    with pytest.raises(ValueError):
        parse_target(bad)


def test_figure_json_has_the_issue_fields():
    f = Figure("pcp pair", 6e-7, 3e-8, "s", "<= 15", "note")
    d = f.to_json()
    assert {"name", "value", "floor", "ratio", "target", "ok"} <= set(d)
    assert d["ratio"] == pytest.approx(20.0)
    assert d["ok"] is False
    assert Figure("zone", 1500.0, 2000.0, "ops/s", ">= 0.5").to_json()["ok"] is True


def test_result_json_lists_every_figure_in_order_and_is_strict_json(tmp_path):
    figs = [Figure("a", 2.0, 1.0, "s", "<= 4"), Figure("b", 1.0, 0.0, "s", None)]
    result = result_json(figs, True, {"detail": {}})
    assert result["quick"] is True
    assert [f["name"] for f in result["figures"]] == ["a", "b"]
    path = tmp_path / "bench.json"
    write_json(result, str(path))
    loaded = json.loads(path.read_text())  # no NaN/Infinity tokens: an infinite ratio is null
    assert loaded["figures"][0]["ok"] is True
    assert loaded["figures"][1]["ratio"] is None
    assert finite({"x": [math.nan, 1.0]}) == {"x": [None, 1.0]}


def test_table_shows_ok_missed_and_informational_rows():
    figs = [
        Figure("fast", 2.0, 1.0, "s", "<= 4"),
        Figure("slow", 5.0, 1.0, "s", "<= 4"),
        Figure("info", 3.0, 1.0, "s"),
        Figure("rate", 100.0, 1000.0, "ops/s", ">= 0.5", "why"),
    ]
    table = format_table(figs)
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["figure", "value"]
    row = {line.split()[0]: line for line in lines[2:6]}
    assert row["fast"].rstrip().endswith("ok")
    assert row["slow"].rstrip().endswith("MISSED")
    assert row["info"].rstrip().endswith("-")
    assert row["rate"].rstrip().endswith("MISSED")
    assert "rate: why" in table
    assert format_table([f.to_json() for f in figs]) == table  # from the JSON as well


def test_linear_fit_recovers_a_line():
    slope, intercept = linear_fit([1, 2, 4, 8], [0.5 + 2 * n for n in (1, 2, 4, 8)])
    assert slope == pytest.approx(2.0)
    assert intercept == pytest.approx(0.5)
    with pytest.raises(ValueError):
        linear_fit([1], [1.0])


def test_the_engine_figure_compares_kernel_seconds_per_wall_second_on_the_best_virtual_run():
    wall = engine.WallRun(window_s=2.5, span_s=0.01, work=engine.Work(4000, 135))
    runs = [engine.VirtualRun(s, s / 2, 12_000, engine.Work(4100, 134)) for s in (0.3, 0.2, 0.4)]
    fig = engine.engine_figure("4 CPUs", wall, runs)
    assert fig.value == pytest.approx(0.05) and fig.floor == pytest.approx(0.004)
    assert fig.ratio == pytest.approx(12.5) and fig.ok is True
    assert "4,000 allocs, 135 task runs" in fig.note and "4,100 allocs, 134 task runs" in fig.note
    assert "CPU time 0.100s: 25.0x in CPU time" in fig.note  # the wall window over the least CPU time
    runs[1].wall_s = 0.3
    assert engine.engine_figure("4 CPUs", wall, runs).ok is False  # best 0.3 s: 8.3x


def test_the_events_figure_is_the_best_runs_cpu_time_per_event_against_the_best_floor():
    """CPU time, not wall time: the run least stretched by other processes is the cheapest, not the shortest."""
    runs = [
        engine.VirtualRun(wall, cpu, 10_000, engine.Work(1, 1)) for wall, cpu in ((0.3, 0.2), (0.15, 0.1), (0.1, 0.3))
    ]
    fig = engine.events_figure("4 CPUs", engine.ROLES, 0.01, runs, [4e-7, 3e-7, 5e-7])
    assert fig.value == pytest.approx(1e-5) and fig.floor == pytest.approx(3e-7)
    assert fig.ratio == pytest.approx(33.3, rel=1e-2) and fig.ok is True
    assert "100,000 events per CPU second (100,000 per wall second)" in fig.note


def test_a_virtual_run_times_only_the_span_after_its_settling():
    """Its events and work are those of the span: a run to settle + span less a run to settle."""
    settle, span = 3e-4, 2e-4

    def totals(until: float) -> tuple[int, engine.Work]:
        cluster = VirtualCluster(engine.ROLES, engine.SEED)
        cluster.run(until)
        cluster.close()
        return cluster.queue.executed, engine._work(cluster)

    (e0, w0), (e1, w1) = totals(settle), totals(settle + span)
    run = engine.run_virtual(engine.ROLES, settle, span)
    assert run.events == e1 - e0 > 0
    assert run.work == engine.Work(w1.allocs - w0.allocs, w1.task_runs - w0.task_runs)
    assert run.work.task_runs > 0
