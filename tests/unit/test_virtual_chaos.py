"""Chaos under virtual time (coordinator.tools.chaos.virtual_runner): every shipped scenario that runs
under virtual time, against every strategy it names, is valid under the wall engine's checker and
byte-identical on a second run; its faults left their marks; the planted fencing bug is caught; and
`pcpsim chaos run --engine virtual` writes what `chaos check` reads."""

import glob
import json
import os
import subprocess
import sys

import pytest

from coordinator.drain.control import Control
from coordinator.membership_rule import MembershipRule
from coordinator.pageset import Pageset
from coordinator.tools import determinism, virtual_coordinator
from coordinator.tools.chaos import checker, history, plan, scenario, transfers, virtual_runner
from coordinator.tools.chaos.sweep import generate
from coordinator.tools.cli import main
from node.alloc import PageAllocator
from node.mm.watermark import pageset_batch
from node.mm.zone import ZONE_START_PFN, Zone, zone_pages
from node.virtual.zone import LocalZone
from node.virtual.zone_rpc import CoordinatorKilled
from tests import stopped

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VIRTUAL = {
    os.path.basename(p)[:-5]: scenario.load(p)
    for p in sorted(glob.glob(os.path.join(ROOT, "deploy", "chaos", "*.toml")))
}
RUNS = [(name, s) for name, sc in VIRTUAL.items() for s in sc.strategies]
# One strategy per scenario, in turn, so each strategy meets a third of the faults: the fast tests' share.
SAMPLE = [(name, sc.strategies[i % len(sc.strategies)]) for i, (name, sc) in enumerate(VIRTUAL.items())]


def _execute(pairs: list[tuple[str, str]]) -> dict[tuple[str, str], virtual_runner.Run]:
    """Each run once, keeping only each CPU log's digest (as a seed sweep runs them)."""
    return {(name, s): virtual_runner.execute(VIRTUAL[name], s, keep_log=False) for name, s in pairs}


@pytest.fixture(scope="module")
def sample() -> dict[tuple[str, str], virtual_runner.Run]:
    return _execute(SAMPLE)


@pytest.fixture(scope="module")
def runs(sample) -> dict[tuple[str, str], virtual_runner.Run]:
    """Every run: the sample's, and the rest."""
    return {pair: sample[pair] if pair in sample else _execute([pair])[pair] for pair in RUNS}


def _entries(run: virtual_runner.Run) -> list[dict]:
    return [json.loads(line) for line in run.history]


def _valid(runs: dict[tuple[str, str], virtual_runner.Run]) -> None:
    for (name, strategy), run in runs.items():
        v = run.verdict
        assert v.valid is True, (name, strategy, json.dumps(v.to_json(), indent=1))
        assert v.stats["drains"]["ok"] > 0, (name, strategy)
        assert v.stats["audit"]["lost"] == v.stats["audit"]["duplicated"] == 0, (name, strategy)
        assert v.stats["transfers"]["allocs"] > 0, (name, strategy)  # the checker replayed the CPUs' logs
        assert v.stats["drain_parts"]["reported"] > 0, (name, strategy)  # and found the drains' parts there


def test_every_shipped_scenario_is_valid_under_virtual_time_with_one_of_its_strategies(sample):
    _valid(sample)


@pytest.mark.slow
def test_every_shipped_scenario_is_valid_under_virtual_time_with_every_strategy(runs):
    _valid(runs)


def test_the_faults_happened(sample):
    """What must be seen for a scenario to have tested anything (tests/integration/test_chaos.py's evidence)."""
    for (name, strategy), run in sample.items():
        entries = _entries(run)
        faults = [e for e in entries if e["type"] == "fault"]
        assert len(faults) == 2 * len(VIRTUAL[name].faults), (name, strategy)
        cpu_dead = run.verdict.stats["transfers"]["cpu_dead"]
        if "past-dead" in name or (name.startswith("kill-") and name != "kill-coordinator"):
            assert cpu_dead > 0, (name, strategy)  # declared dead, or replaced: page_alloc_cpu_dead
        if name in ("kill-coordinator", "restart-after-cma"):  # a new zone, rebuilt from the nodes' claims
            assert run.verdict.stats["transfers"]["coordinator_starts"] == 2, strategy
            assert any(e["ev"] == "claim" for e in run.transfers["transfers-coordinator.jsonl"]), strategy
        if name == "stop-coordinator-mid-drain":
            observed = {e["f"]: e for e in entries if e["type"] == "observe"}
            heal = next(e for e in faults if e["phase"] == "heal")
            assert "coordinator-stopped" in observed and heal["trapped"], strategy
            if (
                strategy != "workqueue"
            ):  # it held a CPU's lock or list set: the lease gave it back, the late commit refused
                assert observed["pcp-locked-at-stop"]["cpus"], strategy
                grants = next(e for e in entries if e["f"] == "grants")["cpus"]
                assert any(
                    g["outcome"] == "expired" and g["stale_commits_refused"] for gs in grants.values() for g in gs
                )
        if name == "two-coordinators":  # a second ran with epoch + 1; the nodes moved to it and refuse the first
            start = next(e for e in faults if e["phase"] == "start")
            heal = next(e for e in faults if e["phase"] == "heal")
            assert start["new_epoch"] == start["old_epoch"] + 1 and start["trapped"]
            assert any(e["f"] == "first-coordinator-resumed" for e in entries)
            stale = f"coordinator epoch {start['old_epoch']}, older than epoch {start['new_epoch']}"
            assert heal["nodes"] and all(
                n["registered"] == start["new_epoch"] and stale in n["probe"] for n in heal["nodes"].values()
            ), heal["nodes"]
    mixed = next(run for (name, _), run in sample.items() if name == "mixed")
    trace = [line for line in mixed.events.splitlines() if " cpu0 " in line]
    assert any("failed: UNAVAILABLE" in line or "timed out" in line for line in trace)  # the partition reached it


@pytest.mark.parametrize(
    "name,strategy",
    [("mixed", "remote"), ("stop-coordinator-mid-drain", "rcu-swap"), ("kill-coordinator", "workqueue")],
)
def test_a_second_run_is_byte_identical(name, strategy):
    report = determinism.check(lambda: virtual_runner.execute(VIRTUAL[name], strategy).outcome())
    assert report.identical, report.describe()


@pytest.mark.slow
def test_every_shipped_scenario_is_byte_identical_on_a_second_run(runs):
    for (name, strategy), run in runs.items():
        again = virtual_runner.execute(VIRTUAL[name], strategy, keep_log=False)
        report = determinism.compare(run.outcome(), again.outcome())
        assert report.identical, (name, strategy, report.describe())


def _held_on_pcp(run: virtual_runner.Run) -> dict[str, int]:
    audit = next(json.loads(line) for line in run.history if '"f":"audit"' in line.replace(" ", ""))
    return {k: v for k, v in audit["where"].items() if k.endswith(".pcp")}


def test_a_scenario_runs_under_the_newest_kernel_profile_and_its_cpus_run_that_kernel():
    """A shipped scenario under kernel 6.19 (`chaos run --kernel`), every strategy: valid, the history
    records the kernel, and the CPUs ran its rules, not 6.1's: 6.1 fixes pcp->high at zone_highsize, which
    no CPU's lists outgrow, while 6.19 auto-tunes it up to high_max for a CPU that keeps freeing, so the
    housekeeping CPUs' lists end the run holding more than that (node.mm.pcp_high)."""
    name = "kill-node"
    c = VIRTUAL[name].cluster
    zone = Zone(ZONE_START_PFN, zone_pages(c.zone_mb), c.cpus)
    fixed_high = Pageset(zone, pageset_batch(zone.managed_pages), c.cpus).high  # the coordinator's, under 6.1
    under_61 = virtual_runner.execute(VIRTUAL[name], "remote", keep_log=False)
    assert max(_held_on_pcp(under_61).values()) <= fixed_high, (_held_on_pcp(under_61), fixed_high)
    newest = scenario.with_kernel(VIRTUAL[name], "6.19")
    for strategy in newest.strategies:
        run = virtual_runner.execute(newest, strategy, keep_log=False)
        _valid({(name, strategy): run})
        meta = json.loads(run.history[0])
        assert meta["scenario"]["cluster"]["kernel"] == "6.19", meta
        assert max(_held_on_pcp(run).values()) > fixed_high, (strategy, _held_on_pcp(run), fixed_high)


def test_another_seed_gives_another_run(sample):
    name, strategy = next(pair for pair in sample if pair[0] == "rpc-fail")
    other = virtual_runner.execute(VIRTUAL[name], strategy, seed=99, keep_log=False)
    assert other.outcome().events != sample[(name, strategy)].outcome().events


def test_the_hash_seed_changes_nothing():
    code = (
        "from coordinator.tools.chaos import scenario, virtual_runner\n"
        "r = virtual_runner.execute(scenario.load('deploy/chaos/mixed.toml'), 'rcu-swap', keep_log=False)\n"
        "print(r.outcome().digests())\n"
    )
    digests = set()
    for hash_seed in ("0", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        digests.add(out.stdout)
    assert len(digests) == 1, digests


def test_the_checker_catches_a_broken_fencing_check_under_virtual_time():
    """tests/chaos/broken-fencing.toml (--unsafe-skip-fencing: the node applies a commit after its lease
    ran out) under virtual time: the stale write is applied and the checker says so."""
    sc = scenario.load(os.path.join(ROOT, "tests", "chaos", "broken-fencing.toml"))
    verdict = virtual_runner.run(sc, "remote")
    assert verdict.valid is False
    assert verdict.findings["stale_writes_applied"], verdict.findings
    assert verdict.stats["stale_commits"]["applied"] >= 1


def test_the_checker_catches_an_unfenced_second_coordinator_under_virtual_time():
    """tests/chaos/unfenced-coordinator.toml (--unsafe-no-epoch: the first coordinator's requests carry no
    epoch): resumed while the second runs, the first commits its drain to a CPU the second serves, and the
    pages it frees into its own, orphaned zone are lost. Under virtual time this happens on every run."""
    sc = scenario.load(os.path.join(ROOT, "tests", "chaos", "unfenced-coordinator.toml"))
    verdict = virtual_runner.run(sc, "remote")
    assert verdict.valid is False and verdict.stats["audit"]["lost"] > 0
    assert any("pages lost" in f for f in verdict.findings["conservation"]), verdict.findings


def test_a_second_coordinator_healed_during_its_trap_wait_is_valid_under_virtual_time():
    """tests/chaos/second-coordinator-early-heal.toml, a sweep's shrunk finding: the heal waits for the
    start (as the wall nemesis's sequential steps do), and killing the first resets the calls it was
    serving, so the workload's drain ends at once instead of at its deadline (past the checker's bound)."""
    sc = scenario.load(os.path.join(ROOT, "tests", "chaos", "second-coordinator-early-heal.toml"))
    verdict = virtual_runner.run(sc, "remote")
    assert verdict.valid, verdict.findings


def test_qpw_locks_from_boot_while_the_isolated_cpu_has_not_registered_with_a_restarted_coordinator(monkeypatch):
    """tests/chaos/qpw-before-the-isolated-cpu-registers.toml, a sweep's finding (seed 120): the restarted
    coordinator's recovery ends while cpu0, the only isolated CPU, is partitioned. qpw's key is the machine's
    nohz_full=, so cpu1 is drained by the remote pcp lock; read from the roles registered so far (as before
    2026-12-06, planted here), the key was off and cpu1 got work items, which the checker finds."""
    sc = scenario.load(os.path.join(ROOT, "tests", "chaos", "qpw-before-the-isolated-cpu-registers.toml"))
    assert virtual_runner.run(sc, "qpw").valid is True
    monkeypatch.setattr(virtual_coordinator, "nohz_full", lambda roles: [])
    verdict = virtual_runner.run(sc, "qpw")
    assert list(verdict.findings) == ["drains_reached_every_cpu"], verdict.findings
    assert all(
        "cpu1" in f and "were work items; qpw drains by the remote pcp lock" in f
        for f in verdict.findings["drains_reached_every_cpu"]
    )


def test_a_refill_answered_after_its_cpu_was_declared_dead_is_not_handed_to_the_task(monkeypatch):
    """tests/chaos/refill-answered-after-cpu-dead.toml, a sweep's shrunk finding (seed 1127): cpu2 is stopped
    with a refill in flight (the zone applies it, its answer waits in cpu2's socket), declared dead, and
    its pages, the refill's among them, go to cpu0; cpu2 resumes before its zone client's timeout and reads
    the answer. The allocation that waited reads the lease again once the page is in hand (node.alloc);
    before 2026-12-06 it did not (planted here), and cpu2's task took a page cpu0 held."""
    sc = scenario.load(os.path.join(ROOT, "tests", "chaos", "refill-answered-after-cpu-dead.toml"))
    assert virtual_runner.run(sc, "remote").valid is True
    alloc_pages = PageAllocator.alloc_pages

    def lease_read_once(self, order, migratetype):
        fenced = self.fenced
        self.fenced = iter([fenced(), False]).__next__
        try:
            return alloc_pages(self, order, migratetype)
        finally:
            self.fenced = fenced

    monkeypatch.setattr(PageAllocator, "alloc_pages", lease_read_once)
    verdict = virtual_runner.run(sc, "remote")
    assert list(verdict.findings) == ["pages_held_twice"], verdict.findings
    assert all("cpu2 allocated it" in f and "while cpu0 held it" in f for f in verdict.findings["pages_held_twice"])


@pytest.mark.parametrize("seed", [2, 3, 5])
def test_a_stopped_node_process_writes_nothing_until_sigcont(tmp_path, seed):
    """A SIGSTOPped wall process runs nothing: no allocation, free, refill or drain of its CPU is logged
    inside the stop. Sweep seeds of stop-node faults only, every strategy. Before 2026-12-06 a stopped
    virtual CPU ran on to its next decision point (a work item queued before the stop, the rest of a
    stretch, a zone call's timeout and retries): these three seeds wrote 1 to 4 transfer-log lines inside
    a stop in each of their runs."""
    sc = generate.generate(seed, kinds=("stop-node",))
    for strategy in sc.strategies:
        out = tmp_path / strategy
        assert virtual_runner.run(sc, strategy, str(out)).valid is True
        (run_dir,) = out.iterdir()
        entries = history.read(str(run_dir / "history.jsonl"))
        events = transfers.load(str(run_dir), entries)
        assert events is not None and stopped.stopped_spans(entries), "the seed stops no node"
        inside = stopped.written_while_stopped(entries, events, after_stop_s=1e-6)
        assert not inside, (strategy, inside[:3])


def test_a_process_declared_dead_by_a_coordinator_that_then_died_cannot_claim_its_pages_from_the_next():
    """tests/chaos/claim-after-declared-dead.toml, a sweep's shrunk finding (seed 1938): cpu1 is declared dead,
    its pages go to cpu0 and then cpu2, and the coordinator is killed before cpu1 hears of it. The next
    coordinator refuses cpu1's claim (its store keeps the processes declared dead); before 2026-12-06
    (planted here) it took it, cpu2's task allocated a page cpu1 held, and the zone refused the claims of
    cpu0 and cpu2, which held those pages honestly."""
    sc = scenario.load(os.path.join(ROOT, "tests", "chaos", "claim-after-declared-dead.toml"))
    assert virtual_runner.run(sc, "remote").valid is True
    with pytest.MonkeyPatch.context() as planted:
        planted.setattr(MembershipRule, "was_declared_dead", lambda self, cpu, incarnation: False)
        verdict = virtual_runner.run(sc, "remote")
    assert list(verdict.findings) == ["pages_held_twice", "claims_in_conflict"], verdict.findings
    assert all("cpu2 allocated it" in f and "while cpu1 held it" in f for f in verdict.findings["pages_held_twice"])
    conflicts = verdict.findings["claims_in_conflict"]
    assert [f.split("'")[0] for f in conflicts] == ["cpu2", "cpu0"], conflicts
    assert all("), cpu1's since " in f for f in conflicts), conflicts


def grants_of(monkeypatch, sc, strategy: str) -> tuple[checker.Verdict, list, int]:
    """Run `sc` under virtual time; its verdict, every grant its CPUs made, and how many of their
    allocations met a held pcp lock (and fell back to the buddy)."""
    runners: list = []
    run = virtual_runner._Runner.run

    def kept(self):
        runners.append(self)
        return run(self)

    monkeypatch.setattr(virtual_runner._Runner, "run", kept)
    verdict = virtual_runner.execute(sc, strategy).verdict
    nodes = runners[0].cluster.nodes
    grants = [g for drain in nodes.drains for g in drain.records()]
    return verdict, grants, sum(pcp.stats.trylock_fail_alloc for pcp in nodes.pcps)


def test_lock_requests_that_arrive_after_their_drainer_gave_up_are_refused_not_granted_to_nobody(monkeypatch):
    """tests/chaos/late-lock-requests.toml: every lock_drain to cpu0 arrives 800 ms late, past the drainer's
    500 ms bound. The drainer abandons each as it stops waiting; the abandon arrives first, and cpu0
    refuses the request: no grant expires. Without the abandons (planted here, as before 2026-12-06),
    cpu0 granted its pages and its pcp lock to nobody until each lease ran out, and its allocations fell
    back to the buddy meanwhile."""
    sc = scenario.load(os.path.join(ROOT, "tests", "chaos", "late-lock-requests.toml"))
    verdict, grants, fell_back = grants_of(monkeypatch, sc, "remote")
    assert verdict.valid is True and grants and not [g for g in grants if g.outcome == "expired"]

    def lease_only(self, member, request_id):
        return
        yield

    monkeypatch.setattr(Control, "_abandon", lease_only)
    verdict, grants, fell_back_then = grants_of(monkeypatch, sc, "remote")
    expired = [g for g in grants if g.outcome == "expired"]
    assert verdict.valid is True and expired and fell_back_then > fell_back


def test_a_retry_held_by_its_stopped_sender_is_answered_by_the_coordinator_serving_when_it_arrives():
    """tests/chaos/free-across-a-second-coordinator.toml, a sweep's shrunk finding (seed 18): cpu0's free was
    applied by the first coordinator, and cpu0's retry, held while cpu0 was stopped, reached a second
    coordinator still rebuilding its zone. Its refusal names the second's epoch, and cpu0 gives the pages
    up; named after the coordinator serving when the retry was sent, cpu0 kept pages cpu1 then held (a
    page held twice, as before 2026-12-06)."""
    sc = scenario.load(os.path.join(ROOT, "tests", "chaos", "free-across-a-second-coordinator.toml"))
    verdict = virtual_runner.run(sc, "workqueue")
    assert verdict.valid is True, verdict.findings


def test_a_run_directory_holds_what_chaos_check_reads(tmp_path, capsys):
    sc = VIRTUAL["kill-node"]
    verdict = virtual_runner.run(sc, "remote", str(tmp_path))
    run_dir = tmp_path / "kill-node-remote"
    for name in ("history.jsonl", "verdict.json", "timeline.html", "events.log", "transfers-coordinator.jsonl"):
        assert (run_dir / name).exists(), name
    entries = history.read(str(run_dir / "history.jsonl"))
    again = checker.check(entries, entries[0]["bound_s"], entries[0]["lease_s"], transfers.load(str(run_dir), entries))
    assert again.to_json() == verdict.to_json()
    assert main(["chaos", "check", str(run_dir)]) == 0
    assert json.loads(capsys.readouterr().out)["valid"] is True


def test_chaos_run_virtual_checks_determinism_and_prints_the_digests(tmp_path, capsys):
    path = os.path.join(ROOT, "deploy", "chaos", "stop-node-brief.toml")
    args = ["chaos", "run", path, "--engine", "virtual", "--strategy", "remote", "--out", str(tmp_path)]
    assert main([*args, "--check-determinism"]) == 0
    out = capsys.readouterr().out
    assert "byte-identical" in out and "event log sha256" in out and "stop-node-brief" in out
    assert (tmp_path / "stop-node-brief-remote" / "verdict.json").exists()


def test_a_noise_model_moves_the_timed_wake_ups_and_the_run_stays_valid_and_reproducible():
    """[cluster] noise (or `chaos run --noise`): each timed wake-up of a virtual CPU comes late by a draw
    from the seed's streams (node.sim.noise), so the same schedule runs at other instants; the checker's
    verdict and a second run's bytes must not care."""
    base = VIRTUAL["kill-node"]
    quiet = scenario.with_noise(base, "quiet")
    report = determinism.check(lambda: virtual_runner.execute(quiet, "remote", keep_log=False).outcome())
    assert report.identical, report.describe()
    run = virtual_runner.execute(quiet, "remote", keep_log=False)
    _valid({("kill-node", "remote"): run})
    plain = virtual_runner.execute(base, "remote", keep_log=False)
    assert run.outcome().events != plain.outcome().events
    assert _entries(run)[0]["scenario"]["cluster"]["noise"] == "quiet"  # the run's history says which model


def test_chaos_run_noise_overrides_the_files_and_is_refused_on_the_wall(tmp_path, capsys):
    path = os.path.join(ROOT, "deploy", "chaos", "stop-node-brief.toml")
    out = tmp_path / "out"
    assert main(["chaos", "run", path, "--noise", "model", "--out", str(out)]) == 2
    assert "--noise needs --engine virtual" in capsys.readouterr().err and not out.exists()
    args = ["chaos", "run", path, "--engine", "virtual", "--strategy", "remote", "--noise", "model"]
    assert main([*args, "--out", str(out)]) == 0
    entries = history.read(str(out / "stop-node-brief-remote" / "history.jsonl"))
    assert entries[0]["scenario"]["cluster"]["noise"] == "model"


def test_check_determinism_is_refused_without_the_virtual_engine_before_running_anything(tmp_path, capsys):
    out = tmp_path / "out"
    path = os.path.join(ROOT, "deploy", "chaos", "kill-node.toml")
    assert main(["chaos", "run", path, "--check-determinism", "--out", str(out)]) == 2
    assert "--check-determinism needs --engine virtual" in capsys.readouterr().err
    assert not out.exists()


def test_a_killed_coordinator_applies_no_zone_request_it_was_serving_or_had_queued(monkeypatch):
    """tests/chaos/zone-requests-of-a-killed-coordinator.toml (sweep seed 7, kill-coordinator only): the
    first kill finds cpu1's zone request in its hold of zone->lock and cpu3's queued behind it, and a
    later one finds another of cpu3's in its hold. Nothing of a killed process runs (node.sim.sigstop):
    the zone's side gives up (CoordinatorKilled), answering nothing and applying no queued request; the
    senders hear the reset and send again, and the run is valid. Planted here as before 2026-12-06, the
    dead coordinators' zones applied two requests."""
    sc = scenario.load(os.path.join(ROOT, "tests", "chaos", "zone-requests-of-a-killed-coordinator.toml"))
    wait_cont, apply = LocalZone._wait_cont, LocalZone.apply
    given_up: list[int] = []
    applied_by_the_dead: list[int] = []

    def watched_wait(self, stop):
        try:
            wait_cont(self, stop)
        except CoordinatorKilled:
            given_up.append(self.cpu.cpu)
            raise

    def watched_apply(self, op, stop=None):
        def at_zone():
            if stop is not None and stop.killed:
                applied_by_the_dead.append(self.cpu.cpu)
            return op()

        return apply(self, at_zone, stop)

    monkeypatch.setattr(LocalZone, "_wait_cont", watched_wait)
    monkeypatch.setattr(LocalZone, "apply", watched_apply)
    assert virtual_runner.run(sc, "workqueue").valid is True
    assert given_up and applied_by_the_dead == []
    given_up.clear()

    def serving_on(self, stop):  # a killed coordinator's zone serves on
        if stop is None or not stop.killed:
            watched_wait(self, stop)

    monkeypatch.setattr(LocalZone, "_wait_cont", serving_on)
    assert virtual_runner.run(sc, "workqueue").valid is True
    assert given_up == [] and len(applied_by_the_dead) == 2


def test_a_lock_freed_late_because_its_node_was_stopped_too_breaks_no_lease():
    """tests/chaos/lock-seen-while-its-node-was-stopped.toml, a sweep's shrunk finding (seed 2552): the
    coordinator stops itself holding cpu1's list set, cpu1 is stopped too, and the lock is free 2.02 s
    after the coordinator's stop, 1.81 s of them with cpu1 stopped. The lease is cpu1's timer: that time
    does not count. Counted (planted here, as before 2026-12-06), the run was invalid."""
    sc = scenario.load(os.path.join(ROOT, "tests", "chaos", "lock-seen-while-its-node-was-stopped.toml"))
    assert virtual_runner.run(sc, "rcu-swap").valid is True
    with pytest.MonkeyPatch.context() as planted:
        planted.setattr(checker, "_nodes_stopped", lambda history: {})
        verdict = virtual_runner.run(sc, "rcu-swap")
    assert list(verdict.findings) == ["lock_lease"]  # the grant's own record breaks its lease too, then
    assert (
        "cpu1: pcp lock free only 2.020s after the coordinator stopped holding it (lease 0.815s)"
        in (verdict.findings["lock_lease"])
    )


def test_a_claim_of_holdings_from_before_a_rebuilt_zone_is_refused(monkeypatch):
    """tests/chaos/claim-from-before-a-rebuilt-zone.toml, from sweep seed 4365 under the wall engine: cpu1,
    stopped across two coordinator restarts, claims first from the third coordinator the pages the second
    counted free and handed out. Its claim is refused, and every other CPU's is taken. With the record of
    the rebuilt zone planted away, cpu1's is taken and the CPUs that held those pages are refused all of
    theirs. Each CPU discards what it is refused before it uses a page again, so no page is in two places;
    the damage is the honest CPUs' lost holdings. The checker judged the planted run valid when this was
    found; now it reads the zone's refusals from the transfer log (`claims_in_conflict`)."""
    sc = scenario.load(os.path.join(ROOT, "tests", "chaos", "claim-from-before-a-rebuilt-zone.toml"))

    def refused(run: virtual_runner.Run) -> list[str]:
        return sorted(line.split()[1] for line in run.events.splitlines() if "holdings refused" in line)

    run = virtual_runner.execute(sc, "remote")
    assert run.verdict.valid, run.verdict.findings
    assert refused(run) == ["cpu1"]
    monkeypatch.setattr(MembershipRule, "rebuilt_since", lambda self, epoch: 0)
    planted = virtual_runner.execute(sc, "remote")
    assert refused(planted) == ["cpu0", "cpu2", "cpu3"]
    assert list(planted.verdict.findings) == ["claims_in_conflict"], planted.verdict.findings
    conflicts = planted.verdict.findings["claims_in_conflict"]
    assert sorted(f.split("'")[0] for f in conflicts) == ["cpu0", "cpu2", "cpu3"], conflicts
    assert all("), cpu1's since " in f for f in conflicts), conflicts


@pytest.mark.parametrize("strategy", ["workqueue", "remote", "rcu-swap", "qpw"])
def test_a_cpu_waiting_out_a_reply_lost_just_before_the_heal_is_live(strategy, monkeypatch):
    """tests/chaos/reply-lost-just-before-the-heal.toml, from sweep seed 4738 under the wall engine: cpu0's
    last refill before the heal loses its answer, and cpu0 allocates again only after its zone client's
    timeout. The reading of every CPU's progress lasts until that wait is over (plan.progress_until); as it
    was before, 1.5 s past settling (planted here), it judged cpu0 not live."""
    sc = scenario.load(os.path.join(ROOT, "tests", "chaos", "reply-lost-just-before-the-heal.toml"))
    run = virtual_runner.execute(sc, strategy)
    assert run.verdict.valid, run.verdict.findings
    monkeypatch.setattr(virtual_runner, "progress_until", lambda healed, read, end: max(read + plan.OBSERVE_S, end))
    planted = virtual_runner.execute(sc, strategy).verdict
    assert planted.findings.get("liveness", [""])[0].startswith("cpu0 (ROLE_HOUSEKEEPING): no allocation"), (
        planted.findings
    )
