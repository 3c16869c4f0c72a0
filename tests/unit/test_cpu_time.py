"""The `--cpu-durations` report (tests/cpu_time.py) charges a test the CPU of the processes it reaps,
and not the time it only waits, under xdist as in one process."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TESTS = """
import subprocess, sys, time

SPIN = "import time\\nwhile time.process_time() < 0.4: pass"

def test_spins_in_a_child():
    subprocess.run([sys.executable, "-c", SPIN], check=True)

def test_sleeps():
    time.sleep(0.4)
"""


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["one process", "two xdist workers"])
def test_a_test_is_charged_its_childrens_cpu_and_not_its_waits(tmp_path, workers):
    (tmp_path / "test_load.py").write_text(TESTS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(tmp_path), "-p", "tests.cpu_time", "--cpu-durations=0", *workers],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    charged = {name: float(s) for s, name in re.findall(r"^\s*([\d.]+)s \S+::(test_\w+)$", result.stdout, re.M)}
    assert charged.keys() == {"test_spins_in_a_child", "test_sleeps"}, result.stdout
    assert charged["test_spins_in_a_child"] >= 0.4, charged  # the child's 0.4 s, and its start
    assert charged["test_sleeps"] < 0.2, charged  # a sleep uses no CPU
    total = re.search(r"^CPU of the tests: (\d+) s in 2 tests, [\d.]+ cores busy over \d+ s$", result.stdout, re.M)
    assert total, result.stdout
    assert float(total[1]) == pytest.approx(sum(charged.values()), abs=1)
