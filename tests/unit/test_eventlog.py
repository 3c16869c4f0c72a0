"""node.eventlog: the bounded per-CPU event logs and GetStats' events window validation."""

import math

import pytest

from node.api import validate
from node.api.errors import InvalidArgument
from node.cpu import NoiseLog
from node.eventlog import EventLog


def test_between_returns_the_overlapping_events_oldest_first():
    log = EventLog()
    for start, end, kind in [(0.0, 1.0, "a"), (2.0, 3.0, "b"), (4.0, 5.0, "c"), (6.0, 7.0, "d")]:
        log.add(start, end, kind)
    assert log.between(2.5, 4.5) == [(2.0, 3.0, "b"), (4.0, 5.0, "c")]
    assert log.between(3.0, 4.0) == [(2.0, 3.0, "b"), (4.0, 5.0, "c")]  # touching counts
    assert log.between(8.0, 9.0) == []
    assert log.between(-1.0, 0.5) == [(0.0, 1.0, "a")]


def test_an_event_that_spans_the_window_is_in_it():
    log = EventLog()
    log.add(0.0, 10.0, "long")
    assert log.between(4.0, 5.0) == [(0.0, 10.0, "long")]


def test_the_log_keeps_only_the_newest_events():
    log = EventLog(keep=3)
    for i in range(10):
        log.add(float(i), i + 0.5, str(i))
    assert [k for _, _, k in log.between(0.0, 100.0)] == ["7", "8", "9"]


def test_noise_log_is_an_event_log_with_overlap():
    log = NoiseLog(keep=8)
    log.add(1.0, 2.0, "workqueue")
    log.add(3.0, 4.0, "irq")
    assert log.overlap(1.5, 3.5) == [("irq", 0.5), ("workqueue", 0.5)]
    assert log.between(1.5, 3.5) == [(1.0, 2.0, "workqueue"), (3.0, 4.0, "irq")]


def test_event_window_accepts_a_bounded_window():
    assert validate.event_window(100.0, 100.5) == (100.0, 100.5)
    assert validate.event_window(0.0, validate.MAX_EVENT_WINDOW_S) == (0.0, validate.MAX_EVENT_WINDOW_S)


@pytest.mark.parametrize(
    "start,end,words",
    [
        (5.0, 5.0, "events_from_s < events_to_s"),
        (6.0, 5.0, "events_from_s < events_to_s"),
        (-1.0, 5.0, "0 <= events_from_s"),
        (0.0, math.inf, "finite"),
        (math.nan, 1.0, "finite"),
        (0.0, validate.MAX_EVENT_WINDOW_S + 0.1, "at most"),
    ],
)
def test_event_window_refuses_bad_windows_naming_the_fields(start, end, words):
    with pytest.raises(InvalidArgument, match=words):
        validate.event_window(start, end)
