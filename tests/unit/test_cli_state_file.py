"""The state file `cluster up` writes, as the other commands read it (coordinator.tools.cli.connect) and as
`cluster up` checks it before writing its own (coordinator.tools.cli.cluster): a file of another shape is a
clear error naming the field, never a traceback from deep in a command."""

import json
import subprocess
import sys

import pytest

from coordinator.tools.cli import cluster, connect
from coordinator.tools.cli.errors import CliError

GOOD = {"coordinator": "127.0.0.1:4000", "token_file": "/x/operator.token", "tls": None, "pids": {"coordinator": 1}}


@pytest.mark.parametrize(
    "doc,message",
    [
        ("{not json", "is not valid: Expecting property name"),
        ("[]", "is not valid: not a JSON object"),
        ('{"coordinator": 5}', "coordinator: expected HOST:PORT"),
        ('{"coordinator": "127.0.0.1:105161"}', "coordinator: expected HOST:PORT"),
        ('{"coordinator": "127.0.0.1:0"}', "coordinator: port 0 cannot be dialled"),
        ('{"coordinator": "127.0.0.1:1", "tls": "x"}', "tls: not an object of paths"),
        ('{"coordinator": "127.0.0.1:1", "token_file": 7}', "token_file: not a path"),
        (b"\xff\xfe", "is not valid"),
    ],
)
def test_a_state_file_of_another_shape_is_refused_naming_the_field(tmp_path, doc, message):
    path = tmp_path / "cluster.json"
    path.write_bytes(doc if isinstance(doc, bytes) else doc.encode())
    with pytest.raises(CliError, match=message):
        connect.read_state(str(path))


def test_a_good_state_file_is_read_a_missing_one_is_none_a_directory_refused(tmp_path):
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(GOOD))
    assert connect.read_state(str(path)) == GOOD
    assert connect.read_state(str(tmp_path / "absent.json")) is None
    with pytest.raises(CliError, match="cannot read: Is a directory"):
        connect.read_state(str(tmp_path))


def _running(*argv: str) -> subprocess.Popen:
    """A Python process with `argv`, once it runs them: a child read before its exec shows its parent's."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; print(flush=True); sys.stdin.read()", *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"\n"
    return proc


def test_a_state_file_is_live_while_its_coordinator_pid_runs_a_coordinator():
    """A stale file (its cluster killed) names a pid that is gone, or reused by another program: not live."""
    proc = _running("coordinator")
    try:
        assert cluster._live_coordinator({"pids": {"coordinator": proc.pid}}) == proc.pid
    finally:
        proc.communicate(b"")
    assert cluster._live_coordinator({"pids": {"coordinator": proc.pid}}) is None  # exited
    other = _running()
    try:
        assert cluster._live_coordinator({"pids": {"coordinator": other.pid}}) is None  # not a coordinator
    finally:
        other.communicate(b"")
    for state in (None, {}, {"pids": []}, {"pids": {"coordinator": "1"}}, {"pids": {"coordinator": True}}):
        assert cluster._live_coordinator(state) is None
