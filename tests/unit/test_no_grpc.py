"""The virtual engine's commands run with no grpc at all: each runs here in a Python where importing grpc
fails, as on a machine with no grpcio wheel (tests/machines/run.sh runs them on s390x, which has none).

The layering test proves the virtual engine's modules import no grpc (tests/unit/test_layering.py); this
proves the `pcpsim` command around them does not either: its parser, its dispatch (each command's module
is imported when it runs) and the security flags every command shares (their grpc half loads at first use).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# grpc None in sys.modules: any `import grpc` (or of a grpc submodule) raises ModuleNotFoundError.
WITHOUT_GRPC = (
    "import sys; sys.modules['grpc'] = None; from coordinator.tools.cli import main; sys.exit(main(sys.argv[1:]))"
)


def pcpsim_without_grpc(*argv: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_GRPC, *argv],
        cwd=cwd,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_command_that_talks_to_a_cluster_fails_there_so_the_block_is_real():
    """The control: `pcpsim state` dials a cluster over gRPC, so with grpc blocked it fails on the import."""
    done = pcpsim_without_grpc("state", "--coordinator", "127.0.0.1:1")
    assert done.returncode != 0
    assert "import of grpc halted" in done.stderr


@pytest.mark.parametrize("command", ["--help", "compare --help", "chaos run --help", "chaos sweep --help", "kernels"])
def test_the_parser_and_the_model_commands_need_no_grpc(command):
    done = pcpsim_without_grpc(*command.split())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def test_a_virtual_compare_runs_and_writes_its_results_without_grpc(tmp_path):
    results = tmp_path / "results.json"
    done = pcpsim_without_grpc(
        "compare", "--engine", "virtual", "--measure-s", "2", "--seed", "3", "--json", str(results)
    )
    assert done.returncode == 0, done.stderr
    assert "every audit clean" in done.stdout
    doc = json.loads(results.read_text())
    assert set(doc["strategies"]) == {"workqueue", "remote"}
    assert all(s["audit"]["ok"] for s in doc["strategies"].values())
    # ... and the report reads it back, also without grpc.
    report = pcpsim_without_grpc("report", str(results), "--no-plots")
    assert report.returncode == 0, report.stderr
    assert "remote" in report.stdout


def test_a_virtual_chaos_run_checks_determinism_without_grpc(tmp_path):
    done = pcpsim_without_grpc(
        "chaos",
        "run",
        "deploy/chaos/mixed.toml",
        "--engine",
        "virtual",
        "--strategy",
        "remote",
        "--check-determinism",
        "--out",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    assert "identical" in done.stdout
    assert "mixed                        remote     true" in done.stdout


def test_a_chaos_sweep_runs_without_grpc(tmp_path):
    done = pcpsim_without_grpc(
        "chaos", "sweep", "--seeds", "1-2", "--strategies", "remote", "--jobs", "1", "--out", str(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "sweep.json").read_text())
    assert doc["seeds_run"] == [1, 2]
    assert doc["counts"] == {"remote": {"valid": 2, "invalid": 0, "unknown": 0, "error": 0}}
