"""Scripted chaos end to end: every shipped scenario against every strategy it names (all four) is
valid, its faults really happened, and a broken variant (fencing off) is caught by the checker."""

import contextlib
import glob
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading

import pytest

from coordinator.pageset import Pageset
from coordinator.tools.chaos import history, runner, scenario, transfers
from coordinator.tools.chaos.nemesis import Nemesis
from coordinator.tools.chaos.processes import process_state
from node.api.v1 import pcpsim_pb2 as pb
from node.mm.watermark import pageset_batch
from node.mm.zone import ZONE_START_PFN, Zone, zone_pages
from tests import browser, stopped
from tests.integration.conftest import run_cli, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIPPED = sorted(glob.glob(os.path.join(ROOT, "deploy", "chaos", "*.toml")))
# `make test` runs one of these on real processes: `mixed` under remote, the scenario with the most
# kinds of fault at once (a kill, a partition past the dead timeout, lost replies, a slow CPU) under
# the strategy the series is about. The other runs of the matrix are `make test-slow`'s (docs/testing.md).
IN_MAKE_TEST = ("mixed", "remote")
RUNS = [
    pytest.param(name, s, marks=() if (name, s) == IN_MAKE_TEST else pytest.mark.slow, id=f"{name}-{s}")
    for name, s in ((os.path.basename(p)[:-5], s) for p in SHIPPED for s in scenario.load(p).strategies)
]
# From the nemesis's start entry, written once SIGSTOP is sent, until the node surely runs no more: the
# signal reaches a running process at its next interrupt or kernel exit, microseconds, on a loaded host
# at its next time slice.
SIGNAL_DELIVERY_S = 0.05


def _logs(run_dir: str) -> str:
    out = []
    for path in sorted(glob.glob(os.path.join(run_dir, "*.log"))):
        with open(path, errors="replace") as f:
            out.append(f.read())
    return "\n".join(out)


def _evidence(name: str, strategy: str, entries: list, logs: str, lease_s: float, events: list | None) -> None:
    """What must be seen in the history and logs (and the transfer logs, `events`) for the scenario to
    have tested anything."""
    faults = [e for e in entries if e["type"] == "fault"]
    assert faults and not [e for e in faults if "error" in e], faults
    if stopped.stopped_spans(entries):  # each stopped node wrote nothing from its SIGSTOP to its SIGCONT
        assert events is not None
        inside = stopped.written_while_stopped(entries, events, after_stop_s=SIGNAL_DELIVERY_S)
        assert not inside, (stopped.stopped_spans(entries), inside[:3])
    heals = [e for e in faults if e["phase"] == "heal"]
    observed = {e["f"]: e for e in entries if e["type"] == "observe"}
    if "past-dead" in name:
        assert "declared dead" in logs and "registering afresh" in logs
    if name in ("kill-node", "kill-isolated-node"):
        assert "replaced:" in logs and "page_alloc_cpu_dead" in logs
    if name == "kill-coordinator":
        assert logs.count("resumed holding") >= 1
    if name.startswith("rpc-") or name == "mixed":
        assert sum(sum(e.get("injected", {}).values()) for e in heals if e["f"] == "rpc") > 0
    if name == "lost-commit" and strategy != "workqueue":  # workqueue drains send no commit
        # cpu0's commits were lost and asked again: it is never declared dead for that alone (the
        # old rule's "within the dead timeout"). A loaded machine may delay its heartbeats past its
        # lease; a drain then rightly declares it dead, the lease provably over (the checker's
        # verdict covers that the pages were not used meanwhile).
        assert sum(e.get("injected", {}).get("drop", 0) for e in heals if e["f"] == "rpc") > 0
        errors = [c["error"] for e in entries if e["f"] == "drain" for c in e.get("cpus", [])]
        assert not [err for err in errors if "within the dead timeout" in err], errors
    if name == "lost-register-reply":
        # The applied Register's reply was lost, asked again, answered: cpu2 runs again (liveness).
        assert sum(e.get("injected", {}).get("drop_reply", 0) for e in heals if e["f"] == "rpc") > 0
        assert "declared dead" in logs and "asking again" in logs and "registered again (afresh" in logs
    if name == "stop-coordinator-mid-drain":
        assert "coordinator-stopped" in observed and any(e.get("trapped") for e in heals)
        if strategy in ("remote", "qpw"):  # the paused coordinator held a node's lock (qpw: isolated CPUs)
            assert observed["pcp-locked-at-stop"]["cpus"]
            assert observed["pcp-lock-free"]["after_s"] <= lease_s + 1.0
            grants = next(e for e in entries if e["type"] == "final" and e["f"] == "grants")["cpus"]
            assert any(g["outcome"] == "expired" and g["stale_commits_refused"] for gs in grants.values() for g in gs)
            refused = [
                c
                for e in entries
                if e["type"] in ("ok", "fail") and e["f"] == "drain"
                for c in e.get("cpus", [])
                if "no longer holds the pcp lock" in c["error"]
            ]
            assert refused, "the coordinator's late drain was not refused"
        if strategy == "rcu-swap":  # it held a node's old list set: the grant expired, its late commit refused
            grants = next(e for e in entries if e["type"] == "final" and e["f"] == "grants")["cpus"]
            assert any(g["outcome"] == "expired" and g["stale_commits_refused"] for gs in grants.values() for g in gs)
    if name == "restart-after-cma":  # the range was taken before the kill and kept across the restart
        taken = [e for e in entries if e["f"] == "alloc-contig" and e["type"] == "ok"]
        killed = next(e for e in faults if e["f"] == "kill-coordinator" and e["phase"] == "start")
        assert taken and taken[0]["t"] < killed["t"], taken
        assert "base pages of stored ranges taken again" in logs
        audit = next(e for e in entries if e["type"] == "final" and e["f"] == "audit")
        assert audit["where"]["cma"] == taken[0]["nr_pages"], audit["where"]
    if name == "two-coordinators":  # a second coordinator ran with epoch + 1; the nodes refuse the first
        start = next(e for e in faults if e["f"] == "second-coordinator" and e["phase"] == "start")
        heal = next(e for e in heals if e["f"] == "second-coordinator")
        assert start["new_epoch"] == start["old_epoch"] + 1 and "first-coordinator-resumed" in observed
        moved = {cpu: n for cpu, n in heal["nodes"].items() if n["registered"] == start["new_epoch"]}
        assert moved, heal["nodes"]
        stale = f"coordinator epoch {start['old_epoch']}, older than epoch {start['new_epoch']}"
        assert all(stale in n["probe"] for n in moved.values()), moved


@pytest.mark.parametrize("name,strategy", RUNS)
def test_scenario_is_valid(tmp_path, name, strategy):
    sc = scenario.load(os.path.join(ROOT, "deploy", "chaos", name + ".toml"))
    verdict = runner.run(sc, strategy, str(tmp_path))
    run_dir = os.path.join(tmp_path, f"{name}-{strategy}")
    assert verdict.valid is True, json.dumps(verdict.to_json(), indent=1)
    entries = history.read(os.path.join(run_dir, "history.jsonl"))
    assert verdict.stats["drains"]["ok"] > 0
    assert verdict.stats["audit"]["lost"] == verdict.stats["audit"]["duplicated"] == 0
    assert verdict.stats["drain_parts"]["reported"] > 0  # each looked for, and found, on its node
    events = transfers.load(run_dir, entries)
    _evidence(name, strategy, entries, _logs(run_dir), sc.cluster.lease_ms / 1000, events)
    for name_ in (
        "verdict.json",
        "timeline.html",
        "history.jsonl",
        "coordinator.log",
        os.path.join("metrics", "coordinator.prom"),
    ):
        assert os.path.exists(os.path.join(run_dir, name_)), name_


@pytest.mark.slow
def test_a_scenario_runs_on_real_processes_under_the_newest_kernel_profile(tmp_path):
    """`chaos run --kernel 6.19`: every process runs 6.19's rules, not 6.1's. 6.1 fixes pcp->high at
    zone_highsize, which no CPU's lists outgrow (tests/unit/test_virtual_chaos.py runs the control);
    6.19 auto-tunes it up to high_max for a CPU that keeps freeing, so a housekeeping CPU's lists end
    the run holding more. The run is valid and its history records the kernel."""
    path = os.path.join(ROOT, "deploy", "chaos", "kill-node.toml")
    result = run_cli("chaos", "run", path, "--kernel", "6.19", "--strategy", "remote", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    entries = history.read(os.path.join(tmp_path, "kill-node-remote", "history.jsonl"))
    meta = next(e for e in entries if e["type"] == "meta" and e["f"] == "scenario")
    assert meta["scenario"]["cluster"]["kernel"] == "6.19"
    c = scenario.load(path).cluster
    zone = Zone(ZONE_START_PFN, zone_pages(c.zone_mb), c.cpus)
    fixed_high = Pageset(zone, pageset_batch(zone.managed_pages), c.cpus).high  # the coordinator's, under 6.1
    audit = next(e for e in entries if e["type"] == "final" and e["f"] == "audit")
    held = {k: v for k, v in audit["where"].items() if k.endswith(".pcp")}
    assert max(held.values()) > fixed_high, (held, fixed_high)


@pytest.mark.slow
def test_the_checker_catches_a_broken_fencing_check(tmp_path):
    """With --unsafe-skip-fencing a stale drainer's commit is applied: the CLI exits 1 and the
    verdict names the stale write (the pages it duplicated may or may not still be duplicated
    at the final audit: a later drain can take them off the lists again); `chaos check`
    agrees."""
    result = run_cli(
        "chaos", "run", os.path.join(ROOT, "tests", "chaos", "broken-fencing.toml"), "--out", str(tmp_path), timeout=180
    )
    assert result.returncode == 1, result.stdout + result.stderr
    run_dir = os.path.join(tmp_path, "broken-fencing-remote")
    with open(os.path.join(run_dir, "verdict.json")) as f:
        verdict = json.load(f)
    assert verdict["valid"] is False
    assert verdict["findings"]["stale_writes_applied"]
    again = run_cli("chaos", "check", run_dir)
    assert again.returncode == 1 and json.loads(again.stdout)["valid"] is False


@pytest.mark.slow
def test_the_checker_catches_a_forgotten_cma_range(tmp_path):
    """With --unsafe-forget-ranges the restarted coordinator does not take the stored CMA range out of
    its zone again: the final audit finds none of the pages the workload holds as CMA."""
    sc = scenario.load(os.path.join(ROOT, "tests", "chaos", "forgotten-cma-range.toml"))
    verdict = runner.run(sc, "remote", str(tmp_path))
    assert verdict.valid is False
    assert any("a taken range was forgotten" in f for f in verdict.findings["conservation"]), verdict.findings


@pytest.mark.slow
def test_the_checker_catches_an_unfenced_second_coordinator(tmp_path):
    """With --unsafe-no-epoch the first coordinator, resumed while the second runs and still within
    the pcp lock's lease, commits its drain to a CPU the second has claimed: those pages are lost.

    The commit races the first coordinator's own keepalive: once resumed, its gRPC timers find the
    pings it sent while stopped unanswered and close its channels (GOAWAY ping_timeout), and a commit
    that comes after that never reaches the node, so nothing is lost (one CI run of six, 2026-12-02). So:
    every run where pages were lost must be judged invalid, and at least one of `runs` must lose them."""
    runs = 3
    sc = scenario.load(os.path.join(ROOT, "tests", "chaos", "unfenced-coordinator.toml"))
    lost = []
    for attempt in range(runs):
        verdict = runner.run(sc, "remote", str(tmp_path / str(attempt)))
        lost.append(verdict.stats["audit"]["lost"])
        if lost[-1]:
            assert verdict.valid is False, verdict.findings
            break
    assert any(lost), f"no run of {runs} lost pages: {lost}"


@pytest.mark.slow
def test_the_nemesis_faults_processes_that_cannot_answer_it_on_time(tmp_path):
    """cpu1 is killed while the coordinator is dead, and cpu0 partitioned while it is stopped. The kill
    asks no one (until 2026-12-07 it asked the coordinator first, failed, and the heal started a second
    cpu1 beside the first: sweep seed 4009, pages held twice under every strategy); the partition's rules
    wait for cpu0's SIGCONT instead of holding up the schedule for an RPC timeout (seed 4003: every later
    fault came 2 s late)."""
    sc = scenario.load(os.path.join(ROOT, "tests", "chaos", "faults-on-processes-that-are-down.toml"))
    verdict = runner.run(sc, "remote", str(tmp_path))
    assert verdict.valid is True, json.dumps(verdict.to_json(), indent=1)
    entries = history.read(os.path.join(tmp_path, f"{sc.name}-remote", "history.jsonl"))
    faults = {(e["f"], e["phase"]): e for e in entries if e["type"] == "fault"}
    assert not [e for e in faults.values() if "error" in e], faults
    assert faults[("kill-node", "start")]["pid"] != faults[("kill-node", "heal")]["pid"]
    assert faults[("partition", "start")]["deferred"] == "stopped"
    assert "pushed" in faults[("stop-node", "heal")]
    assert sum(faults[("partition", "heal")]["injected"].values()) > 0  # the partition took effect


@pytest.mark.slow
def test_a_lock_read_late_behind_a_partitioned_node_breaks_no_lease(tmp_path):
    """The coordinator stops itself holding a pcp lock while cpu3 is partitioned: the nemesis's reads of
    cpu3 get no answer. Until 2026-12-07 the first round waited 2 s on cpu3 and recorded the lock still
    held 2 s after the stop without reading it again (sweep seed 4021: lock_lease, a lease the node
    kept); now each record says when a read last saw the lock held, which the checker holds against
    the lease."""
    sc = scenario.load(os.path.join(ROOT, "tests", "chaos", "lock-watch-beside-a-partitioned-node.toml"))
    verdict = runner.run(sc, "remote", str(tmp_path))
    assert verdict.valid is True, json.dumps(verdict.to_json(), indent=1)
    entries = history.read(os.path.join(tmp_path, f"{sc.name}-remote", "history.jsonl"))
    observed = {e["f"]: e for e in entries if e["type"] == "observe"}
    assert observed["pcp-locked-at-stop"]["cpus"], observed
    lock = observed.get("pcp-lock-free") or observed["pcp-lock-still-held"]
    assert 0 <= lock["held_seen_s"] <= lock["after_s"]


def test_final_observations_without_a_coordinator_leave_the_verdict_unknown(make_cluster, tmp_path):
    """A nemesis step that kills the last coordinator (seed 4036 under the wall engine, before the second
    coordinator's heal checked that a second one ran) leaves nothing to ask at the end: the run records no
    grant records, so its verdict is unknown, and `chaos run` goes on to its next scenario. Until
    2026-12-07 GetState's UNAVAILABLE ended the whole command."""
    handle = make_cluster(["housekeeping", "idle"])
    coordinator = handle.cluster.procs["coordinator"]
    coordinator.send_signal(signal.SIGKILL)
    coordinator.wait(10)
    h = history.History(str(tmp_path / "history.jsonl"))
    h.start_clock()
    said: list[str] = []
    runner._final(handle.cluster, None, h, str(tmp_path), said.append)
    h.close()
    finals = [e["f"] for e in history.read(str(tmp_path / "history.jsonl")) if e["type"] == "final"]
    assert finals == ["audit"] and "no grant records read" in said[-1], (finals, said)


def _starve(pid: int, core: int | None) -> None:
    """Every thread of process `pid` on `core` at the least share of it the scheduler gives (SCHED_IDLE, and
    nice 19 for its session's autogroup, whose weight is what its threads share where autogroups are on);
    with `core` None, back on every core this process may use at the default share."""
    cores = {core} if core is not None else os.sched_getaffinity(0)
    policy = os.SCHED_IDLE if core is not None else os.SCHED_OTHER
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(tid), cores)
            os.sched_setscheduler(int(tid), policy, os.sched_param(0))
    with contextlib.suppress(FileNotFoundError), open(f"/proc/{pid}/autogroup", "w") as f:
        f.write("19" if core is not None else "0")


@pytest.mark.slow
def test_settling_waits_longer_by_the_time_the_hosts_run_queue_held_a_restarted_node_back(make_cluster, monkeypatch):
    """Sweep seed 4816 under the wall engine, four runs at a time on 2 cores: three restarted nodes waited
    23 to 29 s in the host's run queue before they registered, settling ran out and the run was judged
    not live. Here cpu1's process is killed and started again with the least share of the core a busy
    process runs on, so it cannot run its start until the busy process ends, 1.5 s after a settling wait
    of SETTLE_S alone (3 s here) would have ended. The wait grows by the time the run queue held the node
    back, and the cluster settles; with SETTLE_S alone it did not (live CPUs [0] of 2)."""
    monkeypatch.setattr(runner, "SETTLE_S", 3.0)
    handle = make_cluster(["housekeeping", "housekeeping"])
    core = min(os.sched_getaffinity(0))
    busy = subprocess.Popen([sys.executable, "-c", f"import os\nos.sched_setaffinity(0, {{{core}}})\nwhile True: pass"])
    old = handle.cluster.procs["cpu1"]
    old.send_signal(signal.SIGKILL)
    old.wait(10)
    node = handle.cluster.start_node(1, name="cpu1-restart1")
    _starve(node.pid, core)  # the node was started in a session of its own (LocalCluster)

    def release():
        busy.kill()
        _starve(node.pid, None)  # and its threads started meanwhile

    timer = threading.Timer(4.5, release)
    timer.start()
    try:
        settled = runner._settle(handle.cluster, 2)
    finally:
        timer.cancel()
        busy.kill()
        busy.wait()
    assert settled["ok"], settled
    assert settled["waited_s"] > 4.5 and settled["held_back_s"] > 1.5, settled


def test_a_trap_that_springs_after_the_heal_looked_is_disarmed_and_the_coordinator_resumed(make_cluster, tmp_path):
    """The heal of stop-coordinator-mid-drain looks whether the trap sprang, and if not disarms it with
    SetFaults. Seed 4055 under the wall engine: it sprang in between, the stopped coordinator answered
    nothing, the call timed out, and the coordinator stayed stopped for good. Here the coordinator is
    stopped before the disarm is sent (a stop is a stop, whoever sent it), so the race is not left to
    luck: the disarm resumes it and is answered."""
    handle = make_cluster(["housekeeping", "idle"])
    h = history.History(str(tmp_path / "history.jsonl"))
    nemesis = Nemesis(handle.cluster, h, seed=1)
    coordinator = handle.cluster.procs["coordinator"]
    coordinator.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: process_state(coordinator.pid) == "T", 10.0, what="the coordinator stopped")
        assert nemesis._disarm(coordinator) is True
        assert process_state(coordinator.pid) != "T"
    finally:
        coordinator.send_signal(signal.SIGCONT)
        h.close()


def test_the_nemesis_starts_from_the_state_the_cluster_was_ready_in(make_cluster, tmp_path):
    """Sweep seed 4598 (`--jobs 4`, load average 28): the GetState the nemesis asked right after the
    cluster came up broke ("Stream removed (ping timeout)") and the run ended before its first fault. It
    now takes the CPUs' addresses from the answer in which the cluster saw them all up: a coordinator
    that cannot answer now (stopped here) does not stop it."""
    handle = make_cluster(["housekeeping", "idle"])
    ready = {n.cpu: n.address for n in handle.cluster.ready.nodes}
    assert sorted(ready) == [0, 1] and all(ready.values()), ready
    coordinator = handle.cluster.procs["coordinator"]
    h = history.History(str(tmp_path / "history.jsonl"))
    coordinator.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: process_state(coordinator.pid) == "T", 10.0, what="the coordinator stopped")
        assert Nemesis(handle.cluster, h, seed=1).addresses == ready
    finally:
        coordinator.send_signal(signal.SIGCONT)
        h.close()


class _ResetFirstProxy:
    """A TCP proxy to `target` that resets the first connection it accepts (a close with SO_LINGER 0 sends
    RST) and forwards the later ones byte for byte: the connection the kernel had queued on a dying
    coordinator's SO_REUSEPORT socket, on demand."""

    def __init__(self, target: str):
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed
            self.accepted += 1
            if self.accepted == 1:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                continue
            upstream = socket.create_connection(self.target)
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()


def test_set_faults_on_the_coordinator_is_asked_again_over_a_connection_reset_before_its_answer(make_cluster, tmp_path):
    """Seed 4036 under the wall engine: right after a second coordinator's heal killed the first, a
    connection queued on the first's listening socket (both on one port, SO_REUSEPORT) was reset, and the
    next trap was never armed. The nemesis asks again on a fresh connection, within its RPC timeout."""
    handle = make_cluster(["housekeeping", "idle"])
    h = history.History(str(tmp_path / "history.jsonl"))
    nemesis = Nemesis(handle.cluster, h, seed=1)
    proxy = _ResetFirstProxy(handle.cluster.coordinator_address)
    handle.cluster.coordinator_address, real = proxy.address, handle.cluster.coordinator_address
    try:
        nemesis._coordinator_set_faults(pb.FaultsRequest(seed=1, stop_mid_drain=False))
        assert proxy.accepted >= 2  # the reset one, then one forwarded
    finally:
        handle.cluster.coordinator_address = real
        proxy.close()
        h.close()


def test_chaos_run_refuses_a_bad_scenario_before_running_anything(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nduration_s = 5\n[[faults]]\nkind = "kill-node"\nat_s = 1\nheal_after_s = 1\n')
    result = run_cli(
        "chaos",
        "run",
        os.path.join(ROOT, "deploy", "chaos", "kill-node.toml"),
        str(bad),
        "--out",
        str(tmp_path / "out"),
    )
    assert result.returncode == 2
    assert "bad.toml: faults[0].cpu: required" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_checker_catches_a_live_cpu_declared_dead_for_one_lost_commit(tmp_path, monkeypatch):
    """With the old commit rule (--unsafe-declare-dead-on-lost-commit, inherited by the run's
    processes) cpu0, its heartbeats answered, is declared dead when its commits go unanswered and
    goes on allocating from pages the zone has taken back: the transfer logs show it."""
    monkeypatch.setenv("PCPSIM_UNSAFE_DECLARE_DEAD_ON_LOST_COMMIT", "1")
    sc = scenario.load(os.path.join(ROOT, "deploy", "chaos", "lost-commit.toml"))
    verdict = runner.run(sc, "remote", str(tmp_path))
    assert verdict.valid is False
    assert any(f.startswith("cpu0 ") for f in verdict.findings["allocated_after_cpu_dead"]), verdict.findings


@pytest.mark.slow
def test_the_checker_catches_a_cpu_parked_for_good_by_a_lost_register_reply(tmp_path, monkeypatch):
    """With Register sent once (--unsafe-register-once) a lost reply to an applied Register leaves
    cpu2 parked while its heartbeats succeed: no allocation and no task run after healing."""
    monkeypatch.setenv("PCPSIM_UNSAFE_REGISTER_ONCE", "1")
    sc = scenario.load(os.path.join(ROOT, "deploy", "chaos", "lost-register-reply.toml"))
    verdict = runner.run(sc, "remote", str(tmp_path))
    assert verdict.valid is False
    assert any(f.startswith("cpu2") for f in verdict.findings["liveness"]), verdict.findings


@pytest.mark.slow
def test_chaos_run_writes_a_timeline_that_opens_in_chromium(tmp_path):
    """`pcpsim chaos run` writes timeline.html into the run directory and `chaos timeline` writes it
    again: in headless Chromium, with no console error or warning, it shows the verdict, a bar per
    operation (invoke to completion) and per fault, the fault shaded, and a latency point per
    completed operation; hovering a mark shows its values. Screenshot in tmp_path (path printed)."""
    if reason := browser.chromium_missing():
        pytest.fail(reason)
    toml = os.path.join(ROOT, "deploy", "chaos", "kill-node.toml")
    out = run_cli("chaos", "run", toml, "--strategy", "remote", "--out", str(tmp_path), timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "remaining ~" not in out.stderr  # no progress line when stdout is not a terminal
    run_dir = os.path.join(tmp_path, "kill-node-remote")
    assert os.path.exists(os.path.join(run_dir, "timeline.html"))
    again = os.path.join(tmp_path, "again.html")
    assert run_cli("chaos", "timeline", run_dir, "--out", again).returncode == 0
    entries = history.read(os.path.join(run_dir, "history.jsonl"))
    invokes = [e for e in entries if e["type"] == "invoke"]
    completed = [e for e in entries if e["type"] in ("ok", "fail", "info")]
    grants = next(e["cpus"] for e in entries if e["f"] == "grants")
    page = browser.open_page(again, os.path.join(tmp_path, "timeline.png"))
    assert browser.console_errors(page) == []
    assert "valid: true" in page["text"] and page["title"] == "pcpsim chaos run kill-node / remote"
    charts = {c["title"]: c for c in page["charts"]}
    ops = charts["Operations and faults"]
    assert ops["bars"] == len(invokes) + 1 + sum(len(g) for g in grants.values())  # + the one fault
    assert ops["bands"] == 1
    latency = charts["Operation latency (invoke to completion), faults shaded"]
    assert latency["dots"] == len(completed) > 0 and latency["bands"] == 1
    assert page["hover"].startswith("kill-node cpu1\nstart t="), page["hover"]


def test_chaos_timeline_of_a_directory_without_history_is_refused(tmp_path):
    """`chaos timeline` on a directory with no history.jsonl exits 2 naming the file, writing nothing."""
    out = run_cli("chaos", "timeline", str(tmp_path))
    assert out.returncode == 2 and "history.jsonl" in out.stderr, out.stderr
    assert os.listdir(tmp_path) == []
