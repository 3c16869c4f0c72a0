"""The bare timer of the noise floor (node.wake_probe): its phase, its samples and how they are read back.

A fake clock drives the phase arithmetic; the one threaded test checks only that samples
are recorded at programmed deadlines one period apart, never how late they were."""

import argparse
import itertools
import json
import os
import time
import types

import pytest

from node import wake_probe
from node.wake_probe import WakeProbe
from tests.clock import FakeClock


def test_the_probe_wakes_just_ahead_of_the_task():
    task = types.SimpleNamespace(next_wake=10.020)
    probe = WakeProbe.beside(task, 0.020, clock=FakeClock(10.0))
    assert probe._deadline == pytest.approx(10.020 - wake_probe.LEAD_S)


def test_a_phase_already_past_moves_on_by_whole_periods():
    task = types.SimpleNamespace(next_wake=9.0)  # the task's next wake is stale
    probe = WakeProbe.beside(task, 0.020, clock=FakeClock(10.0))
    assert 10.0 < probe._deadline <= 10.020
    periods = (probe._deadline - (9.0 - wake_probe.LEAD_S)) / 0.020
    assert periods == pytest.approx(round(periods))


def test_without_a_task_the_probe_runs_from_now():
    probe = WakeProbe.beside(None, 0.020, clock=FakeClock(5.0))
    assert probe._deadline == pytest.approx(5.020)


def test_samples_are_programmed_deadlines_a_period_apart_and_written_atomically(tmp_path):
    probe = WakeProbe.beside(None, 0.005)
    probe.start()
    try:
        deadline_poll = time.monotonic() + 30.0
        while len(probe.samples) < 5 and time.monotonic() < deadline_poll:
            time.sleep(0.01)
    finally:
        probe.stop()
    assert not probe.is_alive()
    at = [a for a, _ in probe.samples]
    assert len(at) >= 5
    for a, b in itertools.pairwise(at):  # whole periods apart (overrun periods are skipped, never shifted)
        k = (b - a) / 0.005
        assert k >= 1 - 1e-6 and k == pytest.approx(round(k), abs=1e-6)
    assert all(late >= 0 for late in probe.lateness)
    path = str(tmp_path / "cpu1.json")
    probe.write(path)
    assert not os.path.exists(path + ".tmp")
    assert json.loads(open(path).read())["period_s"] == 0.005


def test_read_keeps_the_window(tmp_path):
    path = tmp_path / "cpu1.json"
    path.write_text(json.dumps({"period_s": 0.02, "samples": [[1.0, 0.1], [2.0, 0.2], [3.0, 0.3], [4.0, 0.4]]}))
    assert wake_probe.read(str(path), 2.0, 3.5) == [0.2, 0.3]


def test_the_flag_wants_a_writable_directory(tmp_path):
    assert wake_probe.directory(str(tmp_path)) == str(tmp_path)
    with pytest.raises(argparse.ArgumentTypeError, match="not a directory"):
        wake_probe.directory(str(tmp_path / "missing"))
    (tmp_path / "file").write_text("")
    with pytest.raises(argparse.ArgumentTypeError, match="not a directory"):
        wake_probe.directory(str(tmp_path / "file"))
