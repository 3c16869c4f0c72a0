"""Run a snippet of Python under several PYTHONHASHSEED values (the determinism tests of the virtual
engine): set iteration order over strings follows the hash seed, so no decision may depend on it."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
HASH_SEEDS = ("1", "2")


def outputs(code: str, timeout: float = 300.0) -> set[str]:
    """The set of what `python -c code` prints (stripped) under each of HASH_SEEDS, from the repo root:
    one element when the output does not depend on the hash seed."""
    out = set()
    for salt in HASH_SEEDS:
        run = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": salt},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert run.returncode == 0, run.stderr
        out.add(run.stdout.strip())
    return out
