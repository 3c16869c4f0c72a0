"""`pcpsim chaos sweep` end to end under the virtual runner: flags refused before anything runs, a
small sweep's results and files, and the proof it finds bugs: each planted bug (broken fencing, an
unfenced second coordinator, forgotten CMA ranges, a live CPU declared dead for one lost commit)
found within 200 seeds, shrunk to at most 3 faults, and the shrunk file replaying the failure."""

import json
import os
import re

import pytest

from coordinator.tools.chaos import history, scenario
from coordinator.tools.chaos.sweep import generate, shards
from tests.integration.conftest import run_cli


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--seeds", "9-1"], "bad seed range '9-1'"),
        (["--seeds", "0-2147483647"], "names 2,147,483,648 seeds: at most 1,000,000 in one command"),
        (["--seeds", "1-3", "--jobs", "0"], "--jobs: must be > 0"),
        (["--seeds", "1-3", "--strategies", "remote,bogus"], "unknown strategy 'bogus'"),
        (["--seeds", "1-3", "--unsafe", "skip-everything"], "unknown switch 'skip-everything'"),
        (["--seeds", "1-3", "--count", "2"], "--count needs --index"),
        (["--seeds", "1-3", "--index", "1"], "--count is needed"),
        (["--seeds", "1-3", "--index", "3", "--count", "3"], "shard index 3 is not in 0..2"),
        (["--seeds", "1-3", "--index", "0", "--count", "4"], "4 shards for 3 seeds"),
        (["--seeds", "1-3", "--finding", "lost"], "--finding: invalid choice"),
        (["--seeds", "1-3", "--max-failures", "0"], "--max-failures: must be > 0"),
        (["--seeds", "1-4", "--index", "0", "--count", "2", "--max-failures", "1"], "a shard runs every seed"),
        (["--seeds", "1-3", "--faults", "rpc,meteor"], "unknown fault kind 'meteor'"),
        (["--seeds", "1-3", "--rpc-methods", "Register,Hello"], "unknown message 'Hello'"),
        (["--seeds", "1-3", "--faults", "kill-node", "--rpc-methods", "Register"], "add rpc to --faults"),
        (["--seeds", "1-3", "--rpc-losses", "drop,lose"], "unknown loss 'lose'"),
        (["--seeds", "1-3", "--faults", "stop-node", "--rpc-losses", "drop_reply"], "add rpc to --faults"),
        (["--seeds", "1-3", "--engine", "wall", "--shrink"], "--shrink with --engine wall"),
        (["--seeds", "1-3", "--engine", "wall", "--noise", "model"], "--noise with --engine wall"),
        (["--seeds", "1-3", "--engine", "real"], "--engine: invalid choice"),
    ],
)
def test_bad_flags_are_refused_and_nothing_is_written(tmp_path, flags, message):
    out = tmp_path / "out"
    result = run_cli("chaos", "sweep", *flags, "--out", str(out))
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not out.exists()


@pytest.mark.slow
def test_a_sweep_under_the_wall_engine_runs_each_seed_on_real_processes(tmp_path):
    """Seed 4009, the schedule that killed a node while the coordinator was dead (the wall nemesis asked
    the dead coordinator first until 2026-12-07, so the kill failed and a second node process joined the
    first): under real processes, its run directory kept for the failure's history and logs."""
    result = run_cli(
        "chaos", "sweep", "--engine", "wall", "--seeds", "4009", "--strategies", "remote", "--out", str(tmp_path),
        timeout=300,
    )  # fmt: skip
    shard = shards.read(str(tmp_path / "sweep.json"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert shard.engine == "wall" and shard.counts["remote"]["valid"] == 1
    assert "engine: wall (real processes" in result.stdout
    run_dir = tmp_path / "runs" / "sweep-4009-remote"
    entries = [e for e in history.read(str(run_dir / "history.jsonl")) if e["type"] == "fault"]
    kill = next(e for e in entries if e["f"] == "kill-node" and e["phase"] == "start")
    assert "error" not in kill and os.path.exists(run_dir / "coordinator.log")


def test_an_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("")
    result = run_cli("chaos", "sweep", "--seeds", "1", "--out", str(tmp_path / "f"))
    assert result.returncode == 2 and "not a directory" in result.stderr


def test_a_small_sweep_reports_every_run_and_writes_each_failure_as_a_loadable_scenario(tmp_path):
    result = run_cli(
        "chaos", "sweep", "--seeds", "1-3", "--strategies", "workqueue,remote", "--jobs", "2", "--out", str(tmp_path),
        timeout=600,
    )  # fmt: skip
    shard = shards.read(str(tmp_path / "sweep.json"))
    assert result.returncode == shards.exit_code(shard), result.stdout + result.stderr
    assert re.search(
        r"^sweep of seeds 1-3: 3 seeds run \(6 runs\) in \d+\.\d s, \d+\.\d\d seeds/s$", result.stdout, re.M
    )
    assert "wall_s" not in json.loads((tmp_path / "sweep.json").read_text())  # how long it took: printed, not kept
    assert "remaining ~" not in result.stderr  # no progress line when stdout is not a terminal
    assert shard.seeds_run == [1, 2, 3] and sum(sum(by.values()) for by in shard.counts.values()) == 6
    for f in shard.failures:
        assert f"seed {f.seed} {f.strategy} {f.verdict}: {f.first}" in result.stdout
        assert scenario.load(f.file).faults == generate.generate(f.seed).faults


FULL = ()  # the whole fault space
# Each planted bug: its switch, the violation it makes, what the checker says of it, and the fault
# space hunted. The last two need one answer lost at one moment, which the whole fault space reaches
# too rarely for 200 seeds (docs/sweep.md); their hunts aim the rpc rules at that answer, as a user
# suspecting it would: declare-dead-on-lost-commit a drain's commit, register-once the Register of a
# node declared dead while it was stopped.
PLANTED = [
    ("skip-fencing", "stale_writes_applied", "applied after its lease expired", FULL),
    ("no-epoch", "conservation", "lost", FULL),
    ("forget-ranges", "conservation", "a taken range was forgotten", FULL),
    (
        "declare-dead-on-lost-commit",
        "allocated_after_cpu_dead",
        "took its pages back (cpu_dead)",
        ("--rpc-methods", "PcpControl.unlock"),
    ),
    (
        "register-once",
        "liveness",
        "no allocation after healing",
        ("--faults", "stop-node,rpc", "--rpc-methods", "Register", "--rpc-losses", "drop_reply"),
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("switch,finding,says,focus", PLANTED, ids=[p[0] for p in PLANTED])
def test_a_sweep_finds_each_planted_bug_and_shrinks_it_to_a_file_that_replays_it(
    tmp_path, switch, finding, says, focus
):
    """With a planted bug switched on (skip-fencing: the nodes accept a drainer's commit after its lease
    ran out; no-epoch: a second coordinator is not fenced; forget-ranges: a restarted coordinator forgets
    the CMA ranges taken; declare-dead-on-lost-commit: the coordinator declares a live CPU dead when one
    commit goes unanswered; register-once: a node sends its Register once, so a lost answer to an
    applied one leaves it parked for good), a sweep of at most 200 seeds under remote finds its violation, stops there
    (--max-failures 1), shrinks it to at most 3 faults, and the shrunk file, replayed by `chaos run
    --engine virtual`, is invalid with that violation again."""
    result = run_cli(
        "chaos", "sweep", "--seeds", "1-200", "--strategies", "remote", "--unsafe", switch, *focus,
        "--finding", finding, "--max-failures", "1", "--shrink", "--jobs", "2", "--out", str(tmp_path),
        timeout=3600,
    )  # fmt: skip
    shard = shards.read(str(tmp_path / "sweep.json"))
    [found] = [f for f in shard.failures if finding in f.kinds] or [None]
    assert found is not None, result.stdout + result.stderr
    assert shard.seeds_run == list(range(1, found.seed + 1)) and len(shard.seeds_run) <= 200
    small = found.shrunk
    assert small["faults"] <= 3 and finding in small["kinds"], small
    assert f"stopped at seed {found.seed}" in result.stdout or found.seed == 200
    out = tmp_path / "replay"
    replay = run_cli("chaos", "run", small["file"], "--engine", "virtual", "--out", str(out))
    assert replay.returncode == 1, replay.stdout + replay.stderr
    [run_dir] = os.listdir(out)
    verdict = json.loads((out / run_dir / "verdict.json").read_text())
    assert verdict["valid"] is False and any(says in m for m in verdict["findings"][finding]), verdict
