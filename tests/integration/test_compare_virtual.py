"""`pcpsim compare --engine virtual` as a real process: --check-determinism passes, and a second process
with another string hash salt (tests.hashseed) writes the same results file and event log, byte for byte."""

import hashlib
import os
import re

import pytest

from tests.hashseed import HASH_SEEDS
from tests.integration.conftest import run_cli

ARGS = ("compare", "--engine", "virtual", "--quick", "--seed", "7")


@pytest.mark.slow
def test_check_determinism_passes_and_another_hash_salt_writes_the_same_bytes(tmp_path):
    """Three runs in two processes: --check-determinism's two under the first salt, and one more under
    the second, whose results file must be the first's byte for byte."""
    first, second = HASH_SEEDS
    out = tmp_path / f"results-{first}.json"
    r = run_cli(
        *ARGS, "--check-determinism", "--json", str(out), timeout=600, env={**os.environ, "PYTHONHASHSEED": first}
    )
    assert r.returncode == 0, r.stderr
    assert "determinism: two runs gave byte-identical results and event logs" in r.stdout
    results = re.search(r"^results sha256 ([0-9a-f]{64})$", r.stdout, re.M)
    events = re.search(r"^event log sha256 ([0-9a-f]{64}) \((\d+) events\)$", r.stdout, re.M)
    assert results and events, r.stdout
    written = out.read_bytes()
    assert results.group(1) == hashlib.sha256(written).hexdigest()
    assert b'"engine": "virtual"' in written and b"run_dir" not in written

    again, log = tmp_path / f"results-{second}.json", tmp_path / "events.log"
    r = run_cli(
        *ARGS, "--json", str(again), "--event-log", str(log), timeout=600, env={**os.environ, "PYTHONHASHSEED": second}
    )
    assert r.returncode == 0, r.stderr
    assert again.read_bytes() == written
    assert hashlib.sha256(log.read_bytes()).hexdigest() == events.group(1)
    assert f"event log written to {log} ({int(events.group(2)):,} events)" in r.stdout
