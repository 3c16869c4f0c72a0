"""`pcpsim compare --engine virtual` as a real process: --check-determinism passes, and two processes with
different string hash salts (tests.hashseed) write the same results file, byte for byte."""

import hashlib
import os
import re

import pytest

from tests.hashseed import HASH_SEEDS
from tests.integration.conftest import run_cli

ARGS = ("compare", "--engine", "virtual", "--quick", "--seed", "7")


@pytest.mark.slow
def test_check_determinism_finds_two_runs_identical_and_the_digest_is_the_files(tmp_path):
    out = tmp_path / "results.json"
    r = run_cli(*ARGS, "--check-determinism", "--json", str(out), timeout=600)
    assert r.returncode == 0, r.stderr
    assert "determinism: two runs gave byte-identical results and event logs" in r.stdout
    results = re.search(r"^results sha256 ([0-9a-f]{64})$", r.stdout, re.M)
    assert results and re.search(r"^event log sha256 [0-9a-f]{64} \(\d+ events\)$", r.stdout, re.M), r.stdout
    assert results.group(1) == hashlib.sha256(out.read_bytes()).hexdigest()


@pytest.mark.slow
def test_two_processes_write_the_same_results_bytes(tmp_path):
    written = []
    for salt in HASH_SEEDS:
        out = tmp_path / f"results-{salt}.json"
        r = run_cli(*ARGS, "--json", str(out), timeout=600, env={**os.environ, "PYTHONHASHSEED": salt})
        assert r.returncode == 0, r.stderr
        written.append(out.read_bytes())
    assert len(HASH_SEEDS) == 2 and written[0] == written[1]
    assert b'"engine": "virtual"' in written[0] and b"run_dir" not in written[0]
