# The README's two commands: `make compare` (install, then run the comparison on a
# local cluster) and `make test` (install what the tests need, then run every test but the slow
# ones; `make test-slow` runs those, and CI runs both).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: compare test test-slow test-hostile test-containers test-machines lint system-deps

compare:
	python3 -m venv $(VENV) && $(VENV)/bin/pip install -q -e . && $(BYTECODE) && $(VENV)/bin/pcpsim compare --quick

# Every process pcpsim starts (nodes, coordinators, the CLI under test) imports its own modules. With
# PYTHONDONTWRITEBYTECODE set (as on the project's machines) none of them caches bytecode, so each
# compiled all of pcpsim from source at start, ~0.3 s of CPU; compiled once here, they read it. The
# 16 CLI-refusal tests of tests/integration/test_sweep.py took 18.7 s without it, 10.0 s with it.
BYTECODE = $(PY) -m compileall -q coordinator node tests

# promtool (Debian package `prometheus`) checks every process's /metrics in the tests;
# chromium and chromium-driver open the HTML report and chaos timeline (tests/browser.py).
# deploy/apt-install.sh retries a failed `apt-get update` (a mirror mid-sync).
system-deps:
	@command -v promtool >/dev/null || deploy/apt-install.sh prometheus
	@command -v chromedriver >/dev/null || deploy/apt-install.sh chromium chromium-driver

# Two tiers (docs/testing.md): `make test` is the README's test command, every test but the `slow`
# ones, within five minutes on 2 cores; `make test-slow` runs the `slow` ones (the wall chaos matrix,
# the planted-bug hunts, the bench, the virtual matrix's every strategy), about ten minutes more. CI
# (.ci/run) runs both. The 10,000-example hostile run (`hostile_full`) is in neither: `make test-hostile`.
#
# Three xdist workers on 2 cores: much of the suite waits on real clusters (chaos timelines,
# compare phases), so two workers left a third of the CPU idle (1.42 cores busy on average,
# 2026-12-05); three took pytest from 706-731 s to 572-622 s from fresh clones (docs/benchmarks.md).
# tests/conftest.py keeps the tests that share a cluster or a compare run on one worker, so each
# is set up once, and starts the slow tests first. On more cores, `make test TEST_WORKERS=N`.
# --cpu-durations (tests/cpu_time.py) prints the CPU the tests used, with the processes they
# start: on 2 cores that, not wall time, is what bounds the suite.
TEST_WORKERS ?= 3
PYTEST = python3 -m venv $(VENV) && $(VENV)/bin/pip install -q -e '.[test]' && $(BYTECODE) && \
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup --durations=25 --cpu-durations=25
test: system-deps
	$(PYTEST) -m 'not slow and not hostile_full'

test-slow: system-deps
	$(PYTEST) -m 'slow and not hostile_full'

# ruff (lint, then format) and mypy, configured in pyproject.toml. All three run, so one
# pass shows every finding; the target fails if any of them found something.
lint:
	python3 -m venv $(VENV) && $(VENV)/bin/pip install -q -e '.[lint]'
	@rc=0; \
	$(VENV)/bin/ruff check . || rc=1; \
	$(VENV)/bin/ruff format --check . || rc=1; \
	$(VENV)/bin/mypy || rc=1; \
	exit $$rc

# 10,000 hostile requests per service against a live cluster (minutes; opt-in, see
# tests/integration/test_hostile.py). Prints the examples run and the status codes seen.
test-hostile:
	python3 -m venv $(VENV) && $(VENV)/bin/pip install -q -e '.[test]' && \
		$(PY) -m pytest -s -m hostile_full tests/integration/test_hostile.py

# The image and the Compose stack for real, with podman and podman-compose (deploy/containers/test.sh):
# installs them, makes the Debian base image once, builds the images, runs the stack plain and with
# tokens and TLS, drains and audits from the host, kills a node, and tears everything down.
test-containers:
	python3 -m venv $(VENV) && $(VENV)/bin/pip install -q -e '.[test]'
	deploy/containers/test.sh

# One seed, the same bytes on x86_64, aarch64 and s390x (qemu-user) and 32-bit x86 (tests/machines/run.sh):
# installs qemu-user-static and g++-multilib, unpacks Debian's Python 3.11 for each into .pcpsim/machines.
test-machines:
	python3 -m venv $(VENV) && $(VENV)/bin/pip install -q -e .
	tests/machines/run.sh
