"""`pcpsim bench --engine virtual`: the scale figure as compare phases under virtual time, each in a
child process. Its figures' arithmetic, the flags refused, and one small phase through the child
(4 CPUs, what --quick's 16 prove at more). No wall-clock time is asserted."""

import argparse
import dataclasses

import pytest

from coordinator.drain.record import STRATEGIES
from coordinator.tools.bench import figures, virtual_scale
from coordinator.tools.bench.figure import RSS_BUDGET_BYTES
from coordinator.tools.cli import flags
from coordinator.tools.cli.parser import build_parser

CLEAN = {"ok": True, "lost": 0, "duplicated": 0, "unexpected": 0, "errors": []}


def a_run(**kw) -> virtual_scale.ScaleRun:
    base = dict(
        cpus=256,
        strategy="rcu-swap",
        wall_s=60.0,
        cpu_s=50.0,
        events=3_000_000,
        kernel_s=0.03,
        peak_rss_bytes=400 * 2**20,
        zone_pages=1 << 20,
        audit=CLEAN,
        drains_asked=16,
        drains_done=16,
        drains_failed=0,
        drain_max_s=2e-3,
        reclaim_drains=0,
    )
    return virtual_scale.ScaleRun(**{**base, **kw})


def test_a_balanced_phase_meets_every_target_and_reports_events_per_wall_second():
    balanced, drains, wall, rss = virtual_scale.figures_for(a_run())
    assert (balanced.value, balanced.floor, balanced.ok) == (1 << 20, 1 << 20, True)
    assert (drains.value, drains.floor, drains.ok) == (16, 16, True)
    assert (wall.value, wall.floor, wall.target) == (60.0, 0.03, None)
    assert "3,000,000 events, 50,000 per wall second" in wall.note
    assert rss.floor == 256 * RSS_BUDGET_BYTES and rss.ok is True
    assert len({f.name for f in (balanced, drains, wall, rss)}) == 4


def test_a_lost_page_or_a_failed_drain_misses_its_target():
    lost = a_run(audit={**CLEAN, "ok": False, "lost": 2})
    assert lost.balanced == (1 << 20) - 2 and virtual_scale.figures_for(lost)[0].ok is False
    assert virtual_scale.figures_for(a_run(drains_failed=1))[1].ok is False
    failed = virtual_scale.failed_figure(1024, "remote", "did not finish in 60s")
    assert failed.ok is False and "did not finish" in failed.note


def test_bad_engines_and_steps_are_refused_before_anything_runs():
    with pytest.raises(ValueError, match="unknown engine"):
        figures.run_bench(True, engine="simulated")
    with pytest.raises(ValueError, match="--only"):
        figures.run_bench(True, only=("scale", "nope"))
    assert flags.bench_steps("engine, fast-path") == ("engine", "fast-path")
    for bad in ("engine,engine", "fastpath"):
        with pytest.raises(argparse.ArgumentTypeError):
            flags.bench_steps(bad)


def test_a_small_phase_through_the_child_process_balances_and_reports_its_peak_rss():
    run = virtual_scale.run_child(32, "remote", 1, timeout_s=300.0)
    assert isinstance(run, virtual_scale.ScaleRun), run
    assert run.audit == CLEAN and run.balanced == run.zone_pages > 0
    assert run.drains_asked == run.drains_done > 0 and run.drains_failed == 0
    assert run.events > 0 and run.peak_rss_bytes > 0 and run.kernel_s > 0.022  # past warm-up + measurement
    assert dataclasses.asdict(run)["cpus"] == 32


def test_a_child_that_fails_is_reported_not_raised():
    assert virtual_scale.run_child(31, "remote", 1).startswith("exit 1: ValueError: a machine layout needs")


def test_the_scale_figure_takes_every_strategy_the_drainer_has():
    """`--virtual-strategy` offered three until 2026-12-06; qpw's phase runs too (audit balanced at 32 CPUs)."""
    for name in STRATEGIES:
        assert build_parser().parse_args(["bench", "--virtual-strategy", name]).virtual_strategy == name
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--virtual-strategy", "bogus"])
    run = virtual_scale.measure(32, "qpw", 7)
    assert run.audit["ok"] and run.drains_done == run.drains_asked > 0
