"""How the suite is spread over xdist workers (`make test` runs `-n 3 --dist loadgroup`), and the
`--cpu-durations` report (tests/cpu_time.py)."""

import pytest

pytest_plugins = ("tests.cpu_time",)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook turns xdist_group marks into scopes
def pytest_collection_modifyitems(items):
    """Tests that share an instance of one of the suite's fixtures run on one worker, so it is set
    up once, as in a serial run: a session-scoped fixture (the shared cluster) groups every test
    that uses it, a module-scoped one (a compare run, a TLS cluster) the tests of its module.
    Every other test (each chaos run, each test with a cluster of its own) goes to whichever
    worker is free. Fixtures from pytest and its plugins (baseid "") do not count:
    tmp_path_factory alone would otherwise group every test.

    Then the slow tests (and the groups that hold one) go first: xdist hands out work in this
    order (after the groups, largest first), so the long runs start while the short tests fill
    the gaps, instead of a bench or a chaos run starting last and running alone. That order matters
    in a run of both tiers at once (a plain `pytest`); `make test` and `make test-slow` each hold
    one kind (docs/testing.md)."""
    groups = {}
    for item in items:
        ours = [defs[-1] for defs in item._fixtureinfo.name2fixturedefs.values() if defs[-1].baseid]
        session = sorted(d.argname for d in ours if d.scope == "session")
        if session:
            groups[item] = session[0]
        elif any(d.scope == "module" for d in ours):
            groups[item] = item.module.__name__
        if item in groups:
            item.add_marker(pytest.mark.xdist_group(groups[item]))
    slow = {groups.get(item, item.nodeid) for item in items if item.get_closest_marker("slow")}
    # Each group's tests in a row, where its first test was, in their order (a serial run too sets a
    # shared cluster up once: it stops after a run of its tests, conftest.SharedCluster).
    first: dict = {}
    for i, item in enumerate(items):
        first.setdefault(groups.get(item, item.nodeid), i)
    items.sort(key=lambda item: (groups.get(item, item.nodeid) not in slow, first[groups.get(item, item.nodeid)]))
