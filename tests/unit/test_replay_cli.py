"""`pcpsim replay`: each bug replay reachable from the command line, exit 1 when a profile has the bug."""

import pytest

from coordinator.tools.cli import main


def test_replay_runs_the_bug_and_fix_variants_by_default(capsys):
    assert main(["replay", "up-trylock"]) == 1
    out = capsys.readouterr().out
    assert "up-trylock under 6.2-up: FAILED" in out and "up-trylock under 6.2-up-fixed: passed" in out
    assert "trylock failure on UP" in out


def test_replay_passes_under_the_fixed_profile(capsys):
    assert main(["replay", "bulk-free", "--kernel", "6.2-batched-free"]) == 0
    assert "longest_hold_pages=63" in capsys.readouterr().out


def test_replay_refuses_an_unknown_profile(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["replay", "bulk-free", "--kernel", "6.2,6.3"])
    assert exit_.value.code == 2 and "unknown kernel profile '6.3'" in capsys.readouterr().err
