"""coordinator.tools.determinism: the first divergent line, or none."""

from coordinator.tools import determinism
from coordinator.tools.determinism import Outcome


def test_identical_runs_have_no_divergence_and_one_pair_of_digests():
    report = determinism.check(lambda: Outcome('{"a": 1}\n', "e1\ne2\n"))
    assert report.identical
    assert report.first.digests() == report.second.digests()
    assert "byte-identical" in report.describe()


def test_the_first_divergent_event_is_named_before_the_results():
    runs = iter([Outcome("r1\n", "e1\ne2\ne3\n"), Outcome("r2\n", "e1\nX\ne3\n")])
    report = determinism.check(lambda: next(runs))
    assert report.divergence == "event log line 2: first run 'e2', second run 'X'"
    assert not report.identical


def test_a_longer_log_and_a_results_difference_are_named():
    assert determinism.first_divergence("a\n", "a\nb\n", "event log") == (
        "event log line 2: only the second run has it: 'b'"
    )
    runs = iter([Outcome('{"p99": 1}', "e\n"), Outcome('{"p99": 2}', "e\n")])
    assert determinism.check(lambda: next(runs)).divergence == (
        "results line 1: first run '{\"p99\": 1}', second run '{\"p99\": 2}'"
    )
    assert determinism.first_divergence("a\n", "a\r\n", "x") == "x: same lines, different bytes (line endings)"
