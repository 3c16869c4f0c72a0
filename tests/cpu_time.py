"""`--cpu-durations=N`: the suite's CPU time, and the N tests that used the most of it.

`--durations` shows wall time, which on a loaded 2-core machine says more about the other workers
than about the test. What bounds `make test` there is CPU: five minutes on 2 cores hold 600
CPU-seconds (docs/benchmarks.md). Each phase of a test is charged the CPU its process used
(getrusage, user and system) plus that of the child processes it waited for: the clusters, CLI
calls and sweep workers a test starts are its children. A process is charged when it is reaped,
so a module- or session-scoped cluster counts in the teardown of the test after which it stops.
The figures ride on the test reports, so xdist's workers send them to the controller, which
prints them after the wall durations.
"""

import resource
import time

import pytest

_STARTED = pytest.StashKey[dict]()  # a test's phase -> the CPU time when it began
_SESSION = pytest.StashKey[float]()  # when the session began (monotonic)


def pytest_addoption(parser):
    parser.addoption(
        "--cpu-durations",
        type=int,
        default=None,
        metavar="N",
        help="print the suite's CPU time (tests and the processes they reap) and the N tests that used most (0: all)",
    )


def _cpu_s() -> float:
    """CPU time of this process and of its reaped children, user and system."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Charge the phase that just ended (setup, call or teardown) to its report."""
    report = yield
    started = item.stash.get(_STARTED, {}).pop(call.when, None)
    if started is not None:
        report.cpu_s = _cpu_s() - started
    return report


def _start(item, when):
    if item.config.getoption("cpu_durations") is not None:
        item.stash.setdefault(_STARTED, {})[when] = _cpu_s()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _start(item, "setup")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    _start(item, "call")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item):
    _start(item, "teardown")


def pytest_sessionstart(session):
    session.config.stash[_SESSION] = time.monotonic()


def pytest_terminal_summary(terminalreporter, config):
    count = config.getoption("cpu_durations")
    if count is None:
        return
    charged = [
        report
        for reports in terminalreporter.stats.values()
        for report in reports
        if isinstance(getattr(report, "cpu_s", None), float)
    ]
    by_test: dict = {}
    for report in charged:
        by_test[report.nodeid] = by_test.get(report.nodeid, 0.0) + report.cpu_s
    total = sum(by_test.values())
    wall = time.monotonic() - config.stash[_SESSION]
    title = f"the {count} tests that used the most CPU" if count else "CPU of every test"
    terminalreporter.write_sep("=", title)
    ranked = sorted(by_test.items(), key=lambda kv: -kv[1])
    for nodeid, seconds in ranked[: count or None]:
        terminalreporter.write_line(f"{seconds:8.2f}s {nodeid}")
    terminalreporter.write_line(
        f"CPU of the tests: {total:.0f} s in {len(by_test)} tests, {total / wall:.2f} cores busy over {wall:.0f} s"
    )
