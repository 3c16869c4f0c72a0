"""The `pcpsim` command as a user runs it: `cluster up` in a subprocess, other commands
against its state file, signals, and flag errors."""

import json
import os
import signal

import pytest

from coordinator.tools.cli.cluster import topology
from coordinator.tools.cli.parser import build_parser
from node.mm import profile as profiles
from node.mm.zone import DEFAULT_ZONE_MB, ZONE_START_PFN, zone_pages
from tests.integration.conftest import cluster_up, pid_alive, port_refuses, run_cli, wait_until

STOP_DEADLINE_S = 20.0


def _env():
    env = dict(os.environ)
    env.pop("PCPSIM_STATE", None)
    return env


@pytest.fixture
def cluster_3(tmp_path):
    """`pcpsim cluster up --nodes 3 --isolated 2`; yields (Popen, state dict, state path)."""
    with cluster_up(tmp_path, "--nodes", "3", "--isolated", "2", env=_env()) as up:
        yield up.proc, up.state(), up.state_path


def test_cluster_up_writes_a_state_file_describing_the_cluster(cluster_3):
    """`cluster up --nodes 3 --isolated 2` writes a state file naming the coordinator address and
    the pid of the coordinator and of every CPU, each alive; cpu2 is isolated, the rest are
    housekeeping."""
    _proc, state, _ = cluster_3
    assert set(state["pids"]) == {"coordinator", "cpu0", "cpu1", "cpu2"}
    assert all(pid_alive(pid) for pid in state["pids"].values())
    assert state["coordinator"].startswith("127.0.0.1:") and not port_refuses(state["coordinator"])
    roles = {n["cpu"]: n["role"] for n in state["nodes"]}
    assert roles == {0: "ROLE_HOUSEKEEPING", 1: "ROLE_HOUSEKEEPING", 2: "ROLE_ISOLATED_PREEMPTIBLE"}


def test_a_second_cluster_up_is_refused_the_state_file_of_a_running_one(cluster_3, tmp_path):
    """Taking the file over would point every command at the second cluster, and its stop would
    delete the file of the first: refused before anything starts, the file unchanged."""
    _proc, state, state_path = cluster_3
    before = state_path.read_bytes()
    r = run_cli("cluster", "up", "--nodes", "2", "--state", str(state_path), "--run-dir", str(tmp_path / "second"))
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"cluster still running (coordinator pid {state['pids']['coordinator']})" in r.stderr
    assert state_path.read_bytes() == before and not (tmp_path / "second").exists()


def test_a_run_directory_whose_secrets_path_is_a_file_is_a_clear_error_and_starts_nothing(tmp_path):
    """`cluster up` writes the token files into RUN_DIR/secrets: a file there is refused with exit 2
    naming it (it was a FileExistsError traceback), before any process starts."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "secrets").write_text("")
    state = tmp_path / "state.json"
    r = run_cli("cluster", "up", "--nodes", "1", "--state", str(state), "--run-dir", str(run_dir))
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"cannot set up run directory {run_dir}" in r.stderr and "secrets" in r.stderr
    assert "Traceback" not in r.stderr and not state.exists()
    assert sorted(p.name for p in run_dir.iterdir()) == ["secrets"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_drains_audits_and_signal_stops_everything(cluster_3, sig):
    """Against a running `cluster up`: `drain --strategy remote` and `--strategy workqueue`
    exit 0 and report DONE, `state --json` prints JSON with audit.ok true; then the signal makes
    `cluster up` exit 0, every pid in the state file is gone, the coordinator port refuses
    connections and the state file is removed."""
    proc, state, state_path = cluster_3
    for strategy in ("remote", "workqueue"):
        r = run_cli(
            "drain", "--strategy", strategy, "--force-all-cpus", "--json", "--state", str(state_path), env=_env()
        )
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["status"] == "DONE" and doc["strategy"] == strategy
        assert sorted(c["cpu"] for c in doc["cpus"]) == [0, 1, 2] and all(c["ok"] for c in doc["cpus"])
    r = run_cli("drain", "--strategy", "remote", "--state", str(state_path), env=_env())
    assert r.returncode == 0 and "DONE" in r.stdout, r.stdout + r.stderr
    r = run_cli("state", "--json", "--state", str(state_path), env=_env())
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["audit"]["ok"] is True and doc["audit"]["lost"] == 0 and doc["audit"]["duplicated"] == 0
    # Where the zone's pfns are, for cma-alloc, offline and release --start-pfn.
    assert (doc["zone"]["start_pfn"], doc["zone"]["end_pfn"]) == (
        ZONE_START_PFN,
        ZONE_START_PFN + zone_pages(DEFAULT_ZONE_MB),
    )
    assert [c["cpu"] for c in doc["cpus"]] == [0, 1, 2] and all(c["up"] for c in doc["cpus"])
    # 6.1's 13 lists, the last its one THP list (node.mm.constants), named for each cpu's "lists".
    assert doc["list_labels"][:2] == ["o0:Unm", "o0:Mov"] and doc["list_labels"][12:] == ["o9:all"]
    assert all(len(c["lists"]) == len(doc["list_labels"]) for c in doc["cpus"])

    os.kill(proc.pid, sig)
    wait_until(lambda: proc.poll() is not None, STOP_DEADLINE_S, what="cluster up to exit")
    assert proc.returncode == 0
    wait_until(
        lambda: not any(pid_alive(p) for p in state["pids"].values()),
        STOP_DEADLINE_S,
        what="every cluster process to exit",
    )
    assert port_refuses(state["coordinator"])
    assert not state_path.exists()


@pytest.mark.slow
def test_children_exit_when_cluster_up_is_killed(cluster_3):
    """If `cluster up` is SIGKILLed (no chance to clean up), the coordinator and every node notice
    their parent is gone and exit on their own within seconds: no orphans, the port is free;
    a `drain` against the stale state file then fails with a clear error instead of hanging."""
    proc, state, state_path = cluster_3
    proc.kill()
    proc.wait()
    wait_until(
        lambda: not any(pid_alive(p) for p in state["pids"].values()),
        STOP_DEADLINE_S,
        what="orphaned cluster processes to exit",
    )
    assert port_refuses(state["coordinator"])
    r = run_cli("drain", "--strategy", "remote", "--state", str(state_path), env=_env(), timeout=60)
    assert r.returncode != 0
    assert "UNAVAILABLE" in r.stderr and "Traceback" not in r.stderr


BAD_INVOCATIONS = {
    "nodes_0": (["cluster", "up", "--nodes", "0"], "--nodes: must be in 1..1024, got 0"),
    "nodes_past_one_machine": (["cluster", "up", "--nodes", "100000"], "--nodes: must be in 1..1024, got 100000"),
    "zone_past_the_audit": (["cluster", "up", "--nodes", "3", "--zone-mb", "65537"], "must be in 1..65536, got 65537"),
    "nodes_not_a_number": (["cluster", "up", "--nodes", "three"], "not a whole number"),
    "isolated_cpu_out_of_range": (["cluster", "up", "--nodes", "3", "--isolated", "9"], "outside 0-2"),
    "isolated_every_cpu": (
        ["cluster", "up", "--nodes", "3", "--isolated", "0-2"],
        "at least one CPU must stay a housekeeping CPU",
    ),
    "isolated_garbage": (["cluster", "up", "--nodes", "3", "--isolated", "a-b"], "bad CPU list item"),
    "rt_not_isolated": (["cluster", "up", "--nodes", "3", "--isolated", "2", "--rt", "1"], "not isolated"),
    "zone_used_1": (["cluster", "up", "--nodes", "3", "--zone-used", "1.0"], "must be in [0, 1)"),
    "drain_bogus_strategy": (["drain", "--strategy", "bogus"], "invalid choice: 'bogus'"),
    # Past the wire's fields these were a traceback (ValueError: Value out of range) before 2026-12-06.
    "cma_pages_past_any_zone": (["cma-alloc", "--pages", "99999999999"], "--pages: must be in 1..16777216"),
    "cma_start_pfn_past_any_zone": (
        ["cma-alloc", "--pages", "512", "--start-pfn", "99999999999999999999999"],
        "--start-pfn: must be in 1..17825791",
    ),
    "cma_timeout_past_the_coordinators": (
        ["cma-alloc", "--pages", "512", "--timeout-ms", "999999999999"],
        "--timeout-ms: must be in 1..600000",
    ),
    "release_pages_past_any_zone": (["release", "--start-pfn", "1048576", "--pages", "2**40"], "not a whole number"),
    "cpu_past_any_cluster": (["cpu", "offline", "99999999999"], "argument N: must be in 0..1023"),
    "drain_without_strategy": (["drain"], "--strategy"),
    "drain_without_cluster": (["drain", "--strategy", "remote"], "no cluster state file"),
    "state_without_cluster": (["state", "--json"], "no cluster state file"),
    "audit_without_cluster": (["audit"], "no cluster state file"),
    # A port past 65535 was dialled modulo 65536 (another process's port) before 2026-12-06.
    "coordinator_port_past_65535": (["audit", "--coordinator", "127.0.0.1:105161"], "expected HOST:PORT"),
    "coordinator_empty": (["drain", "--strategy", "remote", "--coordinator", ""], "expected HOST:PORT, got ''"),
    "listen_host_empty": (["cluster", "up", "--listen-host", ""], "--listen-host: not a host name or IP address: ''"),
    "no_command": ([], "required"),
    "kernels_bogus_flag": (["kernels", "--bogus"], "unrecognized arguments: --bogus"),
}


@pytest.mark.parametrize("case", sorted(BAD_INVOCATIONS))
def test_bad_invocations_fail_clearly_and_start_nothing(tmp_path, case):
    """A bad flag or a missing cluster makes `pcpsim` exit non-zero with a message naming the
    problem on stderr, no traceback, and start nothing: no state file, no run directory (neither
    the given one nor the default .pcpsim/)."""
    argv, message = BAD_INVOCATIONS[case]
    state_path = tmp_path / "state" / "cluster.json"
    run_dir = tmp_path / "run"
    if argv[:2] == ["cluster", "up"]:
        argv = [*argv, "--run-dir", str(run_dir)]
    if argv:
        argv = [*argv, "--state", str(state_path)]
    r = run_cli(*argv, env=_env(), cwd=str(tmp_path), timeout=60)
    assert r.returncode != 0
    assert message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not state_path.exists() and not run_dir.exists()
    assert not (tmp_path / ".pcpsim").exists()


def test_kernels_prints_what_each_profile_models():
    """`pcpsim kernels` is the profile table the CPUs run: every live profile, with the facts each
    models (kernel-facts §16 and §17 among them), as text and as JSON."""
    r = run_cli("kernels", "--json", env=_env(), timeout=60)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    by_kernel = {row["kernel"]: row for row in doc["kernels"]}
    assert list(by_kernel) == list(profiles.LIVE)
    assert [by_kernel[k]["lists"] for k in ("5.19", "6.1", "6.6", "6.12", "6.19")] == [15, 13, 13, 14, 14]
    assert by_kernel["5.19"]["pcp lock"] == "local_lock" and by_kernel["6.1"]["pcp lock"] == "spinlock"
    assert [by_kernel[k]["list free"] for k in ("5.19", "6.1", "6.2", "6.12")] == [
        "local lock",
        "spin",
        "trylock",
        "free_unref_folios",
    ]
    assert by_kernel["6.12"]["buddy type"] == "pageblock's" and by_kernel["6.6"]["buddy type"] == "freed with"
    assert by_kernel["6.19"]["flush"] == "batch chunks" and by_kernel["6.12"]["flush"] == "one hold"
    assert set(doc["columns"]) == set(by_kernel["6.1"]) - {"kernel"}
    text = run_cli("kernels", env=_env(), timeout=60)
    assert text.returncode == 0 and text.stdout.splitlines()[0].split()[:2] == ["kernel", "strategy"]
    assert all(any(line.split()[0] == k for line in text.stdout.splitlines() if line) for k in profiles.LIVE)


def test_bad_state_file_is_reported(tmp_path):
    """A state file that is not the JSON `cluster up` writes is reported as invalid (exit 2),
    not as a traceback."""
    state_path = tmp_path / "cluster.json"
    state_path.write_text("{not json")
    r = run_cli("drain", "--strategy", "remote", "--state", str(state_path), env=_env(), timeout=60)
    assert r.returncode == 2
    assert "is not valid" in r.stderr and "Traceback" not in r.stderr


def test_cluster_up_defaults_to_compares_layout_unless_a_layout_flag_is_given():
    """With none of --nodes, --isolated, --rt, `cluster up` starts compare's layout (4 CPUs, isolated
    2-3, RT on 3: a latency task for every dashboard panel); any of them and the others default to
    4 CPUs and none isolated, so `--nodes 2` alone is two housekeeping CPUs."""

    def layout(*argv):
        return topology(build_parser().parse_args(["cluster", "up", *argv]))

    assert layout() == (4, "2-3", "3")
    assert layout("--nodes", "2") == (2, "", "")
    assert layout("--isolated", "2") == (4, "2", "")
    assert layout("--nodes", "3", "--isolated", "2", "--rt", "2") == (3, "2", "2")
