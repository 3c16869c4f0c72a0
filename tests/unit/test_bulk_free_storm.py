"""bulk-free's many-CPU storm on the virtual engine (node.virtual.bulk_free_storm): CPUs flushing
batch << 5 pages at one instant queue on zone->lock; the check fails with one hold per flush (6.12)
and passes with Hahn's pcp->batch chunks (6.19). docs/kernel-facts.md, section 7."""

import pytest

from coordinator.tools.cli import main
from node.shared.timebase import CostModel
from node.virtual import bulk_free_storm as storm

CPUS = 32


@pytest.fixture(scope="module")
def runs():
    return {kernel: storm.bulk_free_storm(kernel, CPUS, seed=1) for kernel in ("6.12", "6.19")}


def test_one_hold_per_flush_fails_the_check(runs):
    """6.12: a CPU frees 2,016 pages (63 << 5) under one zone->lock hold of ~60 µs, and a CPU behind
    31 such holds waits far beyond the bound the batched rule gives."""
    bug = runs["6.12"]
    assert bug.facts["longest_hold_pages"] == 2016 and bug.facts["longest_hold_us"] == 59.98
    assert bug.facts["longest_wait_us"] > 10 * bug.facts["wait_bound_us"]
    assert len(bug.findings) == 2
    assert "freed 2016 pages under one zone->lock hold" in bug.findings[0]
    assert "waited" in bug.findings[1] and "IRQs off" in bug.findings[1]


def test_batched_flushes_pass_the_check(runs):
    """6.19: every free hold is at most pcp->batch pages, and every wait within (N - 1) holds of them."""
    fix = runs["6.19"]
    assert fix.findings == []
    assert fix.facts["longest_hold_pages"] == fix.facts["batch"] == 63
    assert fix.facts["longest_wait_us"] <= fix.facts["wait_bound_us"]


def test_the_storm_frees_the_same_pages_either_way(runs):
    """Batching changes how the pages pass zone->lock, not which: the same frees, the same pages freed;
    more acquisitions (each pays the lock's fixed cost), so the storm as a whole takes longer; and the
    bystander's allocation waits behind one chunk of each CPU instead of one whole flush."""
    bug, fix = runs["6.12"].facts, runs["6.19"].facts
    assert bug["storm_freed_pages"] == fix["storm_freed_pages"] > (CPUS - 1) * 2016
    assert fix["storm_frees"] > 20 * bug["storm_frees"]
    assert fix["storm_us"] > bug["storm_us"]
    assert fix["probe_alloc_us"] * 10 < bug["probe_alloc_us"]


def test_the_wait_bound():
    """(N - 1) acquisitions of at most pcp->batch pages, a refill's hold being the longer."""
    cost = CostModel(time_scale=1.0)
    assert storm.wait_bound_us(316, 63, cost) == pytest.approx(315 * (1.27 + 0.0233 * 63))


def test_same_seed_same_output():
    """Virtual time: a second run with the seed gives the same facts, the event log's digest included;
    another seed draws other network latencies, so another order at zone->lock."""
    first, again, other = (storm.bulk_free_storm("6.12", 8, seed=s).facts for s in (1, 1, 2))
    assert first == again
    assert other["digest"] != first["digest"] and other["longest_hold_pages"] == first["longest_hold_pages"]


@pytest.mark.parametrize(
    "kernel,cpus,message",
    [
        ("6.12", 1, "2 to 1024 CPUs"),
        ("6.12", 1025, "2 to 1024 CPUs"),
        ("6.2-up", 4, "CONFIG_SMP=n"),
        ("6.3", 4, "unknown kernel profile"),
    ],
)
def test_the_storm_refuses_what_it_cannot_run(kernel, cpus, message):
    with pytest.raises(ValueError, match=message):
        storm.bulk_free_storm(kernel, cpus)


def test_cli_runs_the_storm_under_bug_and_fix(capsys):
    assert main(["replay", "bulk-free", "--cpus", "4", "--seed", "3"]) == 1
    out = capsys.readouterr().out
    assert "bulk-free under 6.12 (4 CPUs, seed 3): FAILED" in out
    assert "bulk-free under 6.19 (4 CPUs, seed 3): passed" in out and "longest_hold_pages=63" in out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["replay", "up-trylock", "--cpus", "4"], "--cpus runs bulk-free's many-CPU storm"),
        (["replay", "bulk-free", "--seed", "2"], "--seed is for the virtual engine's storm"),
        (["replay", "bulk-free", "--cpus", "4", "--kernel", "6.19,6.2-up"], "CONFIG_SMP=n"),
        (["replay", "bulk-free", "--cpus", "5000"], "2 to 1024 CPUs"),
    ],
)
def test_cli_refuses_bad_storm_flags(capsys, argv, message):
    """A refusal before anything runs: exit 2, the reason on stderr, nothing on stdout."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_cli_refuses_a_cpu_count_that_is_no_positive_number(capsys, value):
    with pytest.raises(SystemExit) as exit_:
        main(["replay", "bulk-free", "--cpus", value])
    assert exit_.value.code == 2 and "--cpus" in capsys.readouterr().err


def test_a_failing_cpu_ends_the_storm_loudly(monkeypatch):
    """A work item's error (which Cpu keeps on the item) stops the run with it, not with a timeout."""
    monkeypatch.setattr(storm, "MIGRATE_MOVABLE", 7)  # no pcp list has it: rmqueue_pcplist refuses
    with pytest.raises(RuntimeError, match="the fill phase failed: migratetype 7 has no pcp list"):
        storm.bulk_free_storm("6.12", 2)
