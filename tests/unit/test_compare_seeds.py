"""`pcpsim compare --engine virtual --seeds`: one compare per seed, each figure's median and range, each
claim held on k of n seeds (coordinator.tools.compare_seeds)."""

import pytest

from coordinator.tools import cli
from coordinator.tools.compare_seeds import seed_path, summary_cell

SHORT = ["compare", "--engine", "virtual", "--measure-s", "2", "--strategies", "workqueue,remote"]


@pytest.mark.parametrize(
    ("cells", "shown"),
    [
        (["0", "0", "0"], "0"),
        (["26.9", "27.7", "26.5"], "26.9 (26.5-27.7)"),
        (["14", "15"], "14.5 (14-15)"),  # an even count's median falls between: one more decimal
        (["28.1", "28.3"], "28.2 (28.1-28.3)"),  # 28.200000000000003 is 28.2
        (["0 / 0", "1 / 0"], "2 values"),
        (["True", "False", "True"], "2 values"),
    ],
)
def test_a_cell_is_the_median_and_range_of_the_seeds_or_their_one_value(cells, shown):
    assert summary_cell(cells) == shown


def test_each_seeds_results_go_beside_the_path_given():
    assert seed_path("out/results.json", 7) == "out/results-seed7.json"
    assert seed_path("results", 7) == "results-seed7"
    assert seed_path("out.d/results", 2) == "out.d/results-seed2"


def test_seeds_print_medians_and_claims_and_write_each_seeds_own_results_file(tmp_path, capsys):
    """Each seed's file is byte for byte what `--seed N --json` writes: the table only sets them side by side."""
    assert cli.main([*SHORT, "--seeds", "1,3", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "median (min-max) of 2 seeds" in out and "seeds 1, 3" in out
    assert "preemptible wake p99: remote <= 2x the noise floor" in out and "of 2 seeds" in out
    assert "every audit clean" in out and "held on 2 of 2 seeds" in out
    assert cli.main([*SHORT, "--seed", "3", "--json", str(tmp_path / "one.json")]) == 0
    assert (tmp_path / "r-seed3.json").read_bytes() == (tmp_path / "one.json").read_bytes()
    assert (tmp_path / "r-seed1.json").read_bytes() != (tmp_path / "one.json").read_bytes()


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--seeds", "1-2", "--engine", "wall"], "--seeds needs --engine virtual"),
        (["--seeds", "1-2", "--seed", "4"], "--seed and --seeds: give one"),
        (["--seeds", "1-2", "--check-determinism"], "--check-determinism checks one seed"),
        (["--seeds", "1-2", "--event-log", "/tmp/pcpsim-unwritten.log"], "--event-log writes one seed's log"),
        (["--seeds", "1-2", "--json", "/nonexistent-dir/r.json"], "is not a directory this process can write to"),
    ],
)
def test_a_bad_seeds_request_is_refused_before_anything_runs(tmp_path, capsys, extra, said):
    assert cli.main([*SHORT, *extra]) == 2
    assert said in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_bad_seed_range_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([*SHORT, "--seeds", "3-1"])
    assert exit_.value.code == 2 and "bad seed range" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [
        SHORT,
        ["chaos", "run", "deploy/chaos/kill-node.toml", "--engine", "virtual"],
        ["cluster", "up"],
        ["replay", "bulk-free", "--cpus", "4"],
    ],
    ids=["compare", "chaos run", "cluster up", "replay"],
)
@pytest.mark.parametrize(
    ("seed", "said"),
    [
        ("-1", "must be in 0..2147483647, got -1"),
        ("2147483648", "must be in 0..2147483647, got 2147483648"),
        ("7.5", "not a whole number: '7.5'"),
    ],
)
def test_every_seed_flag_takes_what_a_scenario_file_and_seeds_take(capsys, command, seed, said):
    """One bound for every --seed (0..2**31-1, a scenario file's and --seeds'): before 2026-12-06 compare
    and chaos run took -1 or 2**46, a seed no scenario file could name."""
    with pytest.raises(SystemExit) as exit_:
        cli.main([*command, "--seed", seed])
    assert exit_.value.code == 2 and f"--seed: {said}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "said"), [("0", "got 0"), ("86401", "got 86401"), ("99999999999", "got 99999999999")]
)
def test_a_measure_past_a_day_a_phase_is_refused_by_the_parser(capsys, value, said):
    """Before 2026-12-06 --measure-s 99999999999 started a compare that would not end."""
    with pytest.raises(SystemExit) as exit_:
        cli.main([*SHORT, "--measure-s", value])
    assert exit_.value.code == 2 and f"--measure-s: must be in 1..86400, {said}" in capsys.readouterr().err
