"""Where a command will write is checked before it runs (coordinator.tools.cli.paths): a bad --out,
--run-dir, --json, --event-log or --state is refused naming the flag, and nothing is run or made."""

import os
import re

import pytest

from coordinator.tools import cli
from coordinator.tools.cli import paths
from coordinator.tools.cli.errors import CliError


def test_a_directory_flag_takes_a_directory_it_can_write_or_make(tmp_path):
    paths.output_dir("--out", str(tmp_path))
    paths.output_dir("--out", str(tmp_path / "a" / "b"))  # made by the command
    (tmp_path / "file").write_text("")
    with pytest.raises(CliError, match=re.escape(f"--out {tmp_path}/file/x: {tmp_path}/file is not a directory")):
        paths.output_dir("--out", str(tmp_path / "file" / "x"))
    with pytest.raises(CliError, match=r"--out .*/file: .*/file is not a directory"):
        paths.output_dir("--out", str(tmp_path / "file"))
    assert sorted(os.listdir(tmp_path)) == ["file"]  # nothing made


def test_a_file_flag_takes_a_file_in_a_directory_it_can_write(tmp_path):
    paths.output_file("--json", str(tmp_path / "r.json"))
    paths.output_file("--json", str(tmp_path / "new" / "r.json"), make_dirs=True)
    with pytest.raises(CliError, match="is a directory"):
        paths.output_file("--json", str(tmp_path))
    with pytest.raises(CliError, match=re.escape(f"{tmp_path}/new is not a directory this process can write to")):
        paths.output_file("--json", str(tmp_path / "new" / "r.json"))
    (tmp_path / "file").write_text("")
    with pytest.raises(CliError, match="is not a directory this process can write to"):
        paths.output_file("--state", str(tmp_path / "file" / "s.json"), make_dirs=True)
    assert sorted(os.listdir(tmp_path)) == ["file"]


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["compare", "--engine", "virtual", "--quick", "--event-log", "{tmp}"], "--event-log {tmp}: is a directory"),
        (["compare", "--quick", "--run-dir", "{tmp}/file/run"], "--run-dir {tmp}/file/run: {tmp}/file is not"),
        (["chaos", "sweep", "--seeds", "1", "--out", "{tmp}/file"], "--out {tmp}/file: {tmp}/file is not"),
        (
            ["chaos", "run", "deploy/chaos/kill-node.toml", "--engine", "virtual", "--out", "{tmp}/file/o"],
            "--out {tmp}/file/o: {tmp}/file is not",
        ),
        (["bench", "--quick", "--run-dir", "{tmp}/file/r"], "--run-dir {tmp}/file/r: {tmp}/file is not"),
        (["compare", "--engine", "virtual", "--quick", "--json", ""], "--json: an empty path"),
        (["compare", "--engine", "virtual", "--quick", "--event-log", " "], "--event-log: an empty path"),
        (
            ["compare", "--engine", "virtual", "--quick", "--json", "{tmp}/a.json", "--event-log", "{tmp}/./a.json"],
            "--json and --event-log name one file, {tmp}/./a.json",
        ),
        (["chaos", "run", "deploy/chaos/kill-node.toml", "--engine", "virtual", "--out", ""], "--out: an empty path"),
        (["report", "{tmp}/r.json", "--out", ""], "--out: an empty path"),
        (["report", "{tmp}/r.json", "--html", ""], "--html: an empty path"),
        (["report", "{tmp}/r.json", "--out", "{tmp}/file/plots"], "--out {tmp}/file/plots: {tmp}/file is not"),
        (["chaos", "timeline", "{tmp}", "--out", ""], "--out: an empty path"),
    ],
    ids=[
        "compare --event-log",
        "compare --run-dir",
        "chaos sweep --out",
        "chaos run --out",
        "bench --run-dir",
        "compare --json empty",
        "compare --event-log blank",
        "compare --json and --event-log one file",
        "chaos run --out empty",
        "report --out empty",
        "report --html empty",
        "report --out under a file",
        "chaos timeline --out empty",
    ],
)
def test_a_command_refuses_where_it_cannot_write_before_it_runs(tmp_path, capsys, argv, said):
    """Before 2026-12-06 each of these raised a traceback: compare's --event-log after its whole run."""
    (tmp_path / "file").write_text("")
    tmp = str(tmp_path)
    assert cli.main([a.format(tmp=tmp) for a in argv]) == 2
    assert f"pcpsim: error: {said.format(tmp=tmp)}" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_a_write_that_fails_after_the_run_is_a_clear_error(capsys):
    """Checked paths can still refuse the bytes (a full disk: /dev/full): said so, exit 2, no traceback."""
    argv = ["compare", "--engine", "virtual", "--quick", "--measure-s", "1", "--strategies", "remote"]
    assert cli.main([*argv, "--event-log", "/dev/full"]) == 2
    assert "pcpsim: error: cannot write --event-log /dev/full: No space left on device" in capsys.readouterr().err
