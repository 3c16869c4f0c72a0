"""--transfer-log: validated before anything starts, one whole JSON line per event, {cpu} per node."""

import json

import pytest

from coordinator.__main__ import parse_args as coordinator_args
from node.__main__ import parse_args as node_args
from node.shared.transfer_log import open_log

NODE = ["--cpu", "0", "--coordinator", "127.0.0.1:1"]


def test_a_log_in_a_missing_directory_is_refused_with_its_name(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "t.jsonl"
    with pytest.raises(SystemExit) as exit_:
        node_args([*NODE, "--transfer-log", str(missing)], environ={})
    assert exit_.value.code == 2 and f"directory {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        coordinator_args(["--transfer-log", str(missing)], environ={})
    assert node_args(NODE, environ={}).transfer_log is None  # off by default


def test_each_node_writes_its_own_file_one_line_per_event(tmp_path):
    path = str(tmp_path / "transfers-cpu{cpu}.jsonl")
    assert node_args([*NODE, "--transfer-log", path], environ={}).transfer_log == path
    log = open_log(path, iter([1.0, 2.0]).__next__, cpu=3, inc="abc")  # the clock its driver passes
    log.write("refill", pages=[[8, 1]])
    log.fixed["inc"] = "def"  # a new incarnation after a discard
    log.write("alloc", pfn=8, order=0)
    log.close()
    lines = (tmp_path / "transfers-cpu3.jsonl").read_text().splitlines()
    first, second = (json.loads(line) for line in lines)
    assert (first["ev"], first["cpu"], first["inc"], first["pages"]) == ("refill", 3, "abc", [[8, 1]])
    assert (first["t"], second["inc"], second["pfn"], second["t"]) == (1.0, "def", 8, 2.0)
    assert open_log(None, iter(()).__next__, cpu=3) is None
