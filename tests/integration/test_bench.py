"""`pcpsim bench --quick` end to end: it runs, prints the table, writes the JSON and the plot.

Targets are not asserted (they depend on the machine), and neither is any wall-clock time. This is
the suite's one bench run: its JSON, plot and table are kept in .pcpsim/ (bench.json,
bench-scaling.png, bench.txt), where CI (.ci/run) prints the table from."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests.integration.conftest import REPO

FIELDS = {"name", "value", "floor", "ratio", "target", "ok"}
OUT = pathlib.Path(REPO) / ".pcpsim"


@pytest.mark.slow
def test_bench_quick_runs_end_to_end(tmp_path):
    OUT.mkdir(exist_ok=True)
    out = OUT / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "coordinator.tools.cli",
            "bench",
            "--quick",
            "--json",
            str(out),
            "--run-dir",
            str(tmp_path / "run"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    (OUT / "bench.txt").write_text(proc.stdout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[0].split()[:5] == ["figure", "value", "floor", "ratio", "target"]
    result = json.loads(out.read_text())
    figures = result["figures"]
    names = [f["name"] for f in figures]
    assert len(names) == len(set(names)) >= 8
    for f in figures:
        assert set(f) >= FIELDS, f
        assert f["value"] > 0 and f["floor"] > 0, f
        assert (f["ok"] is None) == (f["target"] is None), f
        # The figure's own row ends with its verdict (the header's "ok" and the rule's dashes must not count).
        rows = [line for line in proc.stdout.splitlines() if line.startswith(f["name"] + "  ")]
        assert len(rows) == 1, (f["name"], rows)
        assert rows[0].split()[-1] == ("MISSED" if f["ok"] is False else "ok" if f["ok"] else "-"), rows[0]
    assert result["detail"]["scaling"]["n"] == [1, 2, 4, 8]
    assert os.path.getsize(str(out).removesuffix(".json") + "-scaling.png") > 0
