"""The seed sweep's pure parts (coordinator.tools.chaos.sweep): the generator within its bounds and
valid, the TOML writer's round trip, the shrinker against a fake predicate, seed ranges and shards,
and a whole sweep with a fake runner in one process and in two."""

import collections
import dataclasses
import fnmatch
import glob
import json
import logging
import os
import random

import pytest

from coordinator.tools import cli
from coordinator.tools.chaos import checker
from coordinator.tools.chaos import scenario as sc
from coordinator.tools.chaos.sweep import driver, generate, shards, shrink, tomlfile
from tests import hostile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEEDS = range(1, 1501)


def load_text(tmp_path, text: str, name: str = "s.toml") -> sc.Scenario:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return sc.load(str(path))


# ------------------------------------------------------------------ generate
def test_a_seed_gives_one_scenario_and_draws_nothing_from_the_shared_generator(monkeypatch):
    first = [generate.generate(s) for s in range(1, 50)]
    monkeypatch.setattr(random, "random", lambda: pytest.fail("the shared generator was used"))
    monkeypatch.setattr(random, "randint", lambda *a: pytest.fail("the shared generator was used"))
    assert [generate.generate(s) for s in range(1, 50)] == first
    assert len({(s.cluster, s.faults) for s in first}) == len(first)


def test_every_generated_scenario_passes_the_scenario_validation():
    for seed in SEEDS:
        s = generate.generate(seed)
        assert sc.parse(tomlfile.to_doc(s), s.path) == s, seed


def test_generated_scenarios_stay_within_the_documented_bounds_and_cover_them():
    kinds, rpc, cpus_hit, sizes, overlaps = collections.Counter(), set(), set(), set(), 0
    for seed in SEEDS:
        s = generate.generate(seed)
        c, window = s.cluster, s.duration_s - s.heal_s
        assert generate.CPUS[0] <= c.cpus <= generate.CPUS[1]
        assert generate.LEASE_MS[0] <= c.lease_ms <= generate.LEASE_MS[1]
        assert generate.FAILURE_MS[0] <= c.failure_timeout_ms <= generate.FAILURE_MS[1]
        assert generate.DEAD_BEYOND_FAILURE_MS[0] <= c.dead_timeout_ms - c.failure_timeout_ms
        assert c.dead_timeout_ms - c.failure_timeout_ms <= generate.DEAD_BEYOND_FAILURE_MS[1]
        assert generate.FLUSH_MS[0] <= c.flush_timeout_ms <= generate.FLUSH_MS[1]
        longest = max(generate.WINDOW_S[1], generate.WINDOW_PER_DEAD * c.dead_timeout_ms / 1000)
        assert generate.WINDOW_S[0] - 0.001 <= window <= longest + 0.001
        assert window >= generate.WINDOW_PER_DEAD * c.dead_timeout_ms / 1000 - 0.001  # room to die and rejoin
        assert generate.HEAL_S[0] <= s.heal_s <= generate.HEAL_S[1]
        assert generate.FAULTS[0] <= len(s.faults) <= generate.FAULTS[1]
        sizes.add(c.cpus)
        for f in s.faults:
            kinds[f.kind] += 1
            assert f.heal_after_s >= generate.MIN_FAULT_S and f.heal_at_s <= window
            if f.cpu is not None:
                cpus_hit.add((f.cpu in c.isolated, f.cpu in c.rt))
            if f.kind == "rpc":
                rpc.add((f.side, f.direction))
                assert f.method in generate.RPC_METHODS[f.side, f.direction]
                assert 0 <= f.delay_ms <= generate.DELAY_MS[1]
            if f.kind == "slow-cpu":
                assert generate.SLOW_FACTOR[0] <= f.factor <= generate.SLOW_FACTOR[1]
        overlaps += any(
            a.at_s < b.heal_at_s and b.at_s < a.heal_at_s for i, a in enumerate(s.faults) for b in s.faults[i + 1 :]
        )
    assert set(kinds) == set(sc.KINDS)
    assert rpc == {(side, d) for side in sc.SIDES for d in sc.DIRECTIONS}
    assert cpus_hit == {(False, False), (True, False), (True, True)}  # housekeeping, preemptible, RT
    assert sizes == set(range(generate.CPUS[0], generate.CPUS[1] + 1))
    assert overlaps > len(SEEDS) // 4


def test_seeds_leave_kinds_out_cut_rpc_rules_and_start_faults_together():
    """Swarm testing: a seed's faults come from a subset of the kinds, and over the seeds every
    kind is left out somewhere; about half the rpc effects are certain (probability 1), the rest
    below 1; about half the faults after a seed's first start the instant an earlier one starts
    or heals (fewer kept: such a fault on an earlier one's slot overlaps it and is drawn again)."""
    subsets, effects, cuts, later, together = set(), 0, 0, 0, 0
    for seed in SEEDS:
        s = generate.generate(seed)
        subsets.add(frozenset(f.kind for f in s.faults))
        for i, f in enumerate(s.faults):
            if f.kind == "rpc":
                probabilities = [p for p in (f.drop, f.fail, f.drop_reply) if p]
                assert all(0.05 <= p <= 1 for p in probabilities)
                effects += len(probabilities)
                cuts += probabilities.count(1.0)
            if i:
                later += 1
                together += any(f.at_s in (e.at_s, e.heal_at_s) for e in s.faults[:i])
    assert all(any(kind not in k for k in subsets if len(k) > 1) for kind in sc.KINDS)
    assert 0.4 < cuts / effects < 0.6, (cuts, effects)
    assert 0.3 < together / later < 0.6, (together, later)


def test_about_half_the_faults_last_about_a_timeout_of_their_cluster():
    """Boundary values: with probability NEAR_P a fault lasts one of its cluster's timeouts (lease,
    failure, dead, flush) times 0.8-1.5, cut to the window; the others spread log-uniformly, so
    fewer than half of theirs fall that near a timeout. Each timeout is drawn."""
    near, faults, crossed = 0, 0, collections.Counter()
    for seed in SEEDS:
        s = generate.generate(seed)
        c, window = s.cluster, s.duration_s - s.heal_s
        timeouts = {
            "lease": c.lease_ms,
            "failure": c.failure_timeout_ms,
            "dead": c.dead_timeout_ms,
            "flush": c.flush_timeout_ms,
        }
        for f in s.faults:
            if f.heal_at_s >= window - 0.001 or f.kind == "second-coordinator":
                continue  # cut to the window's end, or lengthened to resume the first coordinator
            faults += 1
            hit = [t for t, ms in timeouts.items() if 0.8 * ms - 1 <= f.heal_after_s * 1000 <= 1.5 * ms + 1]
            near += bool(hit)
            crossed.update(hit)
    assert 0.5 < near / faults < 0.8, (near, faults)
    assert set(crossed) == {"lease", "failure", "dead", "flush"}


def test_a_focused_sweep_draws_only_its_kinds_and_aims_rpc_rules_at_its_messages():
    """--faults and --rpc-methods: every fault of the named kinds, every rpc rule's method glob one
    that matches a named message (on the ends that carry it), and each end and glob that can is drawn."""
    kinds, messages = ("rpc", "kill-coordinator"), ("Register", "PcpControl.unlock")
    ends = set()
    for seed in range(1, 400):
        for f in generate.generate(seed, kinds=kinds, messages=messages).faults:
            assert f.kind in kinds
            if f.kind == "rpc":
                assert any(fnmatch.fnmatchcase(m, f.method) for m in messages), f
                ends.add((f.side, f.direction, f.method))
    # Register is sent by a node to the coordinator, PcpControl.unlock the other way: a node's "*"
    # matches the name Register but is never sent one.
    assert ends == {
        ("coordinator", "in", "Register"),
        ("coordinator", "in", "*"),
        ("node", "out", "Register"),
        ("node", "out", "*"),
        ("coordinator", "out", "PcpControl.*"),
        ("coordinator", "out", "PcpControl.unlock"),
        ("coordinator", "out", "*"),
        ("node", "in", "PcpControl.*"),
        ("node", "in", "PcpControl.unlock"),
        ("node", "in", "*"),
    }
    assert generate.generate(7, kinds=generate.KINDS, messages=(), losses=()) == generate.generate(7)


def test_a_sweep_focused_on_lost_replies_draws_only_rules_that_lose_replies():
    """--rpc-losses drop_reply: every rpc rule loses replies (of messages coming in, the only ones
    whose reply a rule can lose) and nothing else; with Register, only the coordinator's rules."""
    rules = [
        f
        for seed in range(1, 300)
        for f in generate.generate(seed, kinds=("rpc",), messages=("Register",), losses=("drop_reply",)).faults
    ]
    assert rules and all(f.drop_reply > 0 and f.drop == f.fail == 0 for f in rules)
    assert {(f.side, f.direction, f.method) for f in rules} == {
        ("coordinator", "in", "Register"),
        ("coordinator", "in", "*"),
    }
    assert any(f.drop_reply == 1.0 for f in rules) and any(f.drop_reply < 1.0 for f in rules)


# ------------------------------------------------------------------ tomlfile
SHIPPED = sorted(glob.glob(os.path.join(ROOT, "deploy", "chaos", "*.toml")))


@pytest.mark.parametrize("path", SHIPPED, ids=os.path.basename)
def test_a_shipped_scenario_written_out_loads_back_equal(tmp_path, path):
    s = sc.load(path)
    back = load_text(tmp_path, tomlfile.dumps(s))
    assert back == dataclasses.replace(s, path=str(tmp_path / "s.toml"))


def test_generated_scenarios_and_awkward_strings_round_trip(tmp_path):
    for seed in range(1, 200):
        s = generate.generate(seed)
        if seed % 2:
            s = generate.with_unsafe(s, ("unsafe_skip_fencing",))
        assert load_text(tmp_path, tomlfile.dumps(s, f"seed {seed}\nsecond line")) == dataclasses.replace(
            s, path=str(tmp_path / "s.toml")
        )
    noisy = driver.Plan(strategies=("remote",), noise="model").scenario(7)
    assert noisy.cluster.noise == "model" and 'noise = "model"' in tomlfile.dumps(noisy)
    assert load_text(tmp_path, tomlfile.dumps(noisy)) == dataclasses.replace(noisy, path=str(tmp_path / "s.toml"))
    assert "noise" not in tomlfile.dumps(generate.generate(7))  # the default is left out
    newer = driver.Plan(strategies=("remote",), kernel="6.19").scenario(7)
    assert newer.cluster.kernel == "6.19" and 'kernel = "6.19"' in tomlfile.dumps(newer)
    assert load_text(tmp_path, tomlfile.dumps(newer)) == dataclasses.replace(newer, path=str(tmp_path / "s.toml"))
    assert "kernel" not in tomlfile.dumps(generate.generate(7))
    odd = dataclasses.replace(generate.generate(1), description='quote " backslash \\ tab\t del\x7f é 😀')
    assert load_text(tmp_path, tomlfile.dumps(odd)).description == odd.description


# ------------------------------------------------------------------ shrink
def overlap_kill_and_partition(s: sc.Scenario) -> bool:
    """The fake bug: a kill-node on cpu >= 1 overlapping a partition."""
    kills = [f for f in s.faults if f.kind == "kill-node" and f.cpu >= 1]
    parts = [f for f in s.faults if f.kind == "partition"]
    return any(k.at_s < p.heal_at_s and p.at_s < k.heal_at_s for k in kills for p in parts)


def failing_seed(predicate, kinds=generate.KINDS) -> sc.Scenario:
    for seed in SEEDS:
        s = generate.generate(seed, kinds=kinds)
        if predicate(s) and len(s.faults) >= 4 and s.cluster.cpus >= 5:
            return s
    raise AssertionError("no generated scenario fails the fake predicate")


def test_shrinking_finds_the_two_faults_at_zero_for_50_ms_on_two_cpus():
    s = failing_seed(overlap_kill_and_partition)
    small = shrink.shrink(s, overlap_kill_and_partition)
    out = small.scenario
    assert sorted(f.kind for f in out.faults) == ["kill-node", "partition"]
    assert all(f.at_s == 0.0 and f.heal_after_s == shrink.MIN_FAULT_S for f in out.faults)
    assert out.cluster.cpus == 2 and next(f.cpu for f in out.faults if f.kind == "kill-node") == 1
    assert out.duration_s - out.heal_s == pytest.approx(shrink.MIN_FAULT_S, abs=0.0011)  # to the ms, as floats add
    assert overlap_kill_and_partition(out) and sc.parse(tomlfile.to_doc(out), out.path) == out
    again = shrink.shrink(s, overlap_kill_and_partition)
    assert again == small  # deterministic, the number of runs too


def lost_rejoin(s: sc.Scenario) -> bool:
    """The fake bug of register-once: cpu1 stopped for 2 s or more (past a dead timeout), and a
    rule losing Register answers that starts by the stop's heal and ends 1 ms or more after it
    (when the rejoin's Register goes out)."""
    stops = [f for f in s.faults if f.kind == "stop-node" and f.cpu == 1 and f.heal_after_s >= 2.0]
    rules = [f for f in s.faults if f.kind == "rpc" and f.method == "Register" and f.drop_reply]
    return any(r.at_s <= p.heal_at_s and r.heal_at_s >= p.heal_at_s + 0.001 for p in stops for r in rules)


def test_margins_move_each_instant_a_failure_needs_away_from_the_edge_of_failing():
    """Shrunk, the rule outlasts the stop by 1 ms and the stop outlasts 2 s by 0, which virtual time
    hits and real processes do not. With margins (step 5, as a sweep shrinks) each edge sits in the
    middle of the instants that still fail, within MARGIN_MS: the rule's end first (nothing holds
    it), then the stop's, which the rule's end held until it moved; starts at 0 stay."""
    rule = sc.Fault(kind="rpc", at_s=0.5, heal_after_s=3.0, side="coordinator", method="Register", drop_reply=1.0)
    stop = sc.Fault(kind="stop-node", at_s=0.7, heal_after_s=2.6, cpu=1)
    s = dataclasses.replace(generate.generate(1), faults=(stop, rule), duration_s=9.0, heal_s=3.0)
    assert lost_rejoin(s)
    tight = shrink.shrink(s, lost_rejoin).scenario
    [t_stop, t_rule] = tight.faults
    assert (t_stop.at_s, t_stop.heal_after_s, t_rule.at_s, t_rule.heal_at_s) == pytest.approx((0, 2.0, 0, 2.001))
    wide = shrink.shrink(s, lost_rejoin, margins=True)
    [w_stop, w_rule] = wide.scenario.faults
    assert lost_rejoin(wide.scenario) and sc.parse(tomlfile.to_doc(wide.scenario), wide.scenario.path) == wide.scenario
    half = shrink.MARGIN_MS / 2 / 1000
    assert w_rule.heal_at_s == pytest.approx(2.001 + half)  # the rule's end: nothing past it undoes the failure
    assert w_rule.at_s == w_stop.at_s == 0  # at the run's start: nothing earlier to keep away from
    # The stop's end, in the middle of 2.0 s and 1 ms before the rule's end (on the bisection's grain).
    assert w_stop.heal_after_s - 2.0 >= half / 2 - shrink.MARGIN_GRAIN_MS / 1000
    assert w_rule.heal_at_s - w_stop.heal_at_s >= half / 2 - shrink.MARGIN_GRAIN_MS / 1000
    assert wide.scenario.duration_s - wide.scenario.heal_s >= w_rule.heal_at_s  # the window lengthened
    assert shrink.shrink(s, lost_rejoin, margins=True) == wide  # deterministic


def test_shrinking_keeps_what_the_failure_needs():
    """Three faults needed (a stop-node, a slow-cpu and a kill-coordinator, each starting after 0.5 s
    and lasting 0.3 s or more): ddmin keeps exactly them; times stop at what the predicate needs."""

    def fails(s: sc.Scenario) -> bool:
        need = {"stop-node", "slow-cpu", "kill-coordinator"}
        return need <= {f.kind for f in s.faults if f.at_s >= 0.5 and f.heal_after_s >= 0.3}

    def widen(s: sc.Scenario) -> sc.Scenario:  # room for the predicate's times in any window
        return dataclasses.replace(s, duration_s=s.duration_s + 1.0)

    start = None
    for seed in SEEDS:
        s = widen(generate.generate(seed))
        s = dataclasses.replace(s, faults=tuple(dataclasses.replace(f, at_s=f.at_s + 0.5) for f in s.faults))
        if fails(s) and len(s.faults) >= 5:
            start = s
            break
    assert start is not None
    out = shrink.shrink(start, fails).scenario
    assert sorted(f.kind for f in out.faults) == sorted(["stop-node", "slow-cpu", "kill-coordinator"])
    assert all(f.at_s == 0.5 and f.heal_after_s == 0.3 for f in out.faults)


def test_removing_a_cpu_renumbers_faults_and_cpu_lists():
    s = sc.parse(
        {
            "name": "x",
            "duration_s": 6,
            "cluster": {"cpus": 5, "isolated": "1,3,4", "rt": "3"},
            "faults": [
                {"kind": "kill-node", "cpu": 4, "at_s": 0.1, "heal_after_s": 1},
                {"kind": "rpc", "side": "coordinator", "cpu": 0, "fail": 1.0, "at_s": 0, "heal_after_s": 1},
                {"kind": "kill-coordinator", "at_s": 0.1, "heal_after_s": 1},
            ],
        }
    )
    out = shrink.without_cpu(s, 2)
    assert (out.cluster.cpus, out.cluster.isolated, out.cluster.rt) == (4, (1, 2, 3), (2,))
    assert [f.cpu for f in out.faults] == [3, 0, None]
    assert sc.parse(tomlfile.to_doc(out)) == out
    with pytest.raises(AssertionError, match="names cpu4"):
        shrink.without_cpu(s, 4)
    moved = shrink.without_cpu(s, 4, onto=1)
    assert [f.cpu for f in moved.faults] == [1, 0, None] and moved.cluster.isolated == (1, 3)


# ------------------------------------------------------------------ shards
def test_seed_ranges_are_parsed_and_bad_ones_refused():
    assert shards.parse_seeds("1-5") == [1, 2, 3, 4, 5]
    assert shards.parse_seeds("9, 1-2") == [1, 2, 9]
    for bad, why in (("", "expected N"), ("5-2", "N <= M"), ("a-3", "expected N"), ("-1", "expected N")):
        with pytest.raises(shards.ShardError, match=why):
            shards.parse_seeds(bad)
    with pytest.raises(shards.ShardError, match="named twice"):
        shards.parse_seeds("1-5,5")
    with pytest.raises(shards.ShardError, match="2147483647"):
        shards.parse_seeds("1-2147483648")
    # Counted before any list is built: the whole seed space is refused at once, not after 70 GB.
    assert len(shards.parse_seeds("1-1000000")) == shards.MAX_SEEDS
    for bad in ("0-1000000", "1-1000000,2000000", "0-2147483647"):
        with pytest.raises(shards.ShardError, match="seeds: at most 1,000,000 in one command"):
            shards.parse_seeds(bad)


def test_shards_split_the_seeds_into_contiguous_disjoint_slices():
    seeds = shards.parse_seeds("1-1000")
    for count in (1, 3, 7, 1000):
        parts = [shards.shard_of(seeds, i, count) for i in range(count)]
        assert [x for p in parts for x in p] == seeds
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    with pytest.raises(shards.ShardError, match="some would run none"):
        shards.shard_of(seeds[:3], 0, 4)
    with pytest.raises(shards.ShardError, match=r"not in 0\.\.2"):
        shards.shard_of(seeds, 3, 3)


# ------------------------------------------------------------------ a sweep with a fake runner
def fake_runner(s: sc.Scenario, strategy: str) -> checker.Verdict:
    """Invalid under remote when the fake bug is there; unknown on 7-CPU clusters under qpw; raises
    for seed 13 under workqueue."""
    if strategy == "workqueue" and s.seed == 13:
        raise RuntimeError("the engine fell over")
    if strategy == "remote" and overlap_kill_and_partition(s):
        return checker.Verdict(False, {"drains_in_bound": [], "conservation": [f"lost 3 pages (seed {s.seed})"]})
    if strategy == "qpw" and s.cluster.cpus == 7:
        return checker.Verdict("unknown", {"liveness": ["final observations missing"]})
    return checker.Verdict(True, {"conservation": []})


PLAN = driver.Plan(strategies=("workqueue", "remote", "qpw"), runner=fake_runner)


def what_a_worker_inherits(_job) -> tuple:
    return getattr(driver, "SET_BY_THE_CALLER", None), logging.root.manager.disable


def test_a_worker_is_a_fresh_interpreter_given_only_the_callers_logging_level(monkeypatch):
    """Workers inherit none of the caller's heap: a forked worker of a process that had used gRPC
    (a pytest worker after a cluster test) collected its gRPC objects, whose finalizers join threads
    the child does not have, and hung. The caller's `logging.disable` level, which `chaos sweep` sets
    to keep thousands of runs' warnings out of its summary, is handed over explicitly."""
    monkeypatch.setattr(driver, "SET_BY_THE_CALLER", "the caller's heap", raising=False)
    logging.disable(logging.WARNING)
    try:
        workers = driver.Workers(2)
        try:
            seen = list(workers.map(what_a_worker_inherits, range(4)))
        finally:
            workers.close()
    finally:
        logging.disable(logging.NOTSET)
    assert seen == [(None, logging.WARNING)] * 4


def test_a_crash_is_recorded_without_the_addresses_its_text_names():
    """An object's default repr names its address, which differs run to run: the outcome keeps the rest."""

    def runner(s: sc.Scenario, strategy: str) -> checker.Verdict:
        raise RuntimeError(f"{object()!r} fell over")

    o = driver.outcome(runner, generate.generate(1), "remote")
    assert (o.verdict, o.first, o.kinds) == ("error", "RuntimeError: <object object at 0x…> fell over", ("error",))


def test_a_sweep_is_the_same_in_one_process_and_in_two(tmp_path):
    one = driver.sweep(PLAN, list(range(1, 121)), str(tmp_path / "a"), 1, True, "1-120")
    two = driver.sweep(PLAN, list(range(1, 121)), str(tmp_path / "b"), 2, True, "1-120")
    strip = [(f.seed, f.strategy, f.verdict, f.first, f.shrunk.get("faults")) for f in one.failures]
    assert strip == [(f.seed, f.strategy, f.verdict, f.first, f.shrunk.get("faults")) for f in two.failures]
    assert one.counts == two.counts and one.seeds_run == list(range(1, 121))
    assert sum(one.counts["remote"].values()) == 120
    assert {f.verdict for f in one.failures} == {"invalid", "unknown", "error"}
    [crash] = [f for f in one.failures if f.verdict == "error"]
    assert (crash.seed, crash.strategy, crash.first) == (13, "workqueue", "RuntimeError: the engine fell over")
    assert shards.exit_code(one) == 1
    again = driver.sweep(PLAN, list(range(1, 121)), str(tmp_path / "a"), 2, True, "1-120")
    assert json.dumps(again.to_json()) == json.dumps(one.to_json())  # the file holds nothing of the host's
    seen = set()  # one shrink per distinct failure: the first seed of each
    for f in one.failures:
        key = (f.strategy, f.verdict, f.kinds[0])
        assert bool(f.shrunk) == (key not in seen), f
        seen.add(key)
    assert len(seen) == 3 and len(one.failures) > 6
    for f in one.failures:
        if f.verdict == "invalid" and f.shrunk:
            assert f.first.startswith("conservation: lost 3 pages")
            shrunk = sc.load(f.shrunk["file"])
            assert len(shrunk.faults) == 2 and shrunk.strategies == ("remote",)
            assert overlap_kill_and_partition(shrunk) and f.shrunk["first"].startswith("conservation:")
            assert sc.load(f.file).faults == generate.generate(f.seed).faults
            with open(f.shrunk["file"]) as text:
                assert f"pcpsim chaos run {f.shrunk['file']} --engine virtual" in text.read()


def test_shards_merge_into_the_whole_sweep(tmp_path):
    seeds = list(range(1, 31))
    whole = driver.sweep(PLAN, seeds, str(tmp_path), 1, False, "1-30")
    paths = []
    for i in range(3):
        part = driver.sweep(PLAN, shards.shard_of(seeds, i, 3), str(tmp_path), 1, False, "1-30", i, 3)
        paths.append(str(tmp_path / f"shard-{i}.json"))
        shards.write(part, paths[-1])
    merged = shards.merge([(p, shards.read(p)) for p in reversed(paths)])
    assert (merged.counts, merged.failures, merged.seeds_run) == (whole.counts, whole.failures, whole.seeds_run)
    assert shards.missing(merged) == []
    partial = shards.merge([(p, shards.read(p)) for p in paths[:2]])
    assert shards.missing(partial) == [2] and "MISSING shards [2] of 3" in shards.summary(partial)
    with pytest.raises(shards.ShardError, match="both shard 0"):
        shards.merge([(p, shards.read(p)) for p in (paths[0], paths[0])])
    for change in ({"strategies": ["remote"]}, {"noise": "quiet"}, {"engine": "wall"}, {"kernel": "6.19"}):
        other = dataclasses.replace(shards.read(paths[1]), **change)
        with pytest.raises(shards.ShardError, match="of another sweep"):
            shards.merge([(paths[0], shards.read(paths[0])), ("other", other)])
    (tmp_path / "junk.json").write_text('{"format": "something else"}')
    with pytest.raises(shards.ShardError, match="not a sweep shard"):
        shards.read(str(tmp_path / "junk.json"))


def test_max_failures_stops_after_the_seed_that_makes_them_whatever_the_processes(tmp_path):
    """The fake bug fails remote on some seeds: --max-failures 2 runs the seeds up to the second of
    them and no further, in one process and in two, shrinks what it found, and says it stopped."""
    plan = driver.Plan(strategies=("remote",), runner=fake_runner)
    failing = [s for s in range(1, 121) if overlap_kill_and_partition(generate.generate(s))]
    assert len(failing) >= 3
    for processes in (1, 2):
        out = tmp_path / str(processes)
        shard = driver.sweep(plan, list(range(1, 121)), str(out), processes, True, "1-120", max_failures=2)
        assert shard.seeds_run == list(range(1, failing[1] + 1)), processes
        assert [f.seed for f in shard.failures] == failing[:2] and shard.failures[0].shrunk
        assert f"stopped at seed {failing[1]}" in shards.summary(shard)
        shards.write(shard, str(out / "s.json"))
        assert shards.read(str(out / "s.json")) == shard
    whole = driver.sweep(plan, list(range(1, 121)), str(tmp_path / "w"), 1, False, "1-120", max_failures=200)
    assert whole.seeds_run == list(range(1, 121)) and "stopped" not in shards.summary(whole)


def hidden_runner(s: sc.Scenario, strategy: str) -> checker.Verdict:
    """Every run with a slow-cpu loses pages; the fake bug adds a stale write, never the first finding."""
    findings = {"conservation": ["lost 1 page"]} if any(f.kind == "slow-cpu" for f in s.faults) else {}
    if overlap_kill_and_partition(s):
        findings = {"conservation": ["lost 2 pages"], "stale_writes_applied": ["cpu1 applied a stale commit"]}
    return checker.Verdict(False, findings) if findings else checker.Verdict(True, {})


def test_hunting_a_finding_shrinks_only_the_runs_with_it_and_keeps_it(tmp_path):
    plan = driver.Plan(strategies=("remote",), runner=hidden_runner, finding="stale_writes_applied")
    shard = driver.sweep(plan, list(range(1, 121)), str(tmp_path), 1, True, "1-120")
    hunted = [f for f in shard.failures if "stale_writes_applied" in f.kinds]
    others = [f for f in shard.failures if "stale_writes_applied" not in f.kinds]
    assert hunted and others and all(f.first.startswith("conservation") for f in shard.failures)
    assert all(not f.shrunk for f in others + hunted[1:]) and len(hunted) >= 2  # one shrink per distinct failure
    assert hunted[0].shrunk["faults"] == 2 and "stale_writes_applied" in hunted[0].shrunk["kinds"]
    assert f"hunting stale_writes_applied: found in {len(hunted)} runs" in shards.summary(shard)
    assert "(also stale_writes_applied)" in shards.summary(shard)


def test_the_rate_counts_what_it_ran_and_its_floor_is_the_wall_runners_estimate(tmp_path):
    from coordinator.tools.chaos import runner as wall_runner
    from coordinator.tools.chaos.sweep import rate

    r = rate.measure(range(1, 41), ("workqueue", "remote"), 2, fake_runner)
    two = dataclasses.replace(PLAN, strategies=("workqueue", "remote"))
    shard = driver.sweep(two, list(range(1, 41)), str(tmp_path), 1, False, "1-40")
    assert (r.seeds, r.runs, r.processes) == (40, 80, 2)
    assert r.invalid == sum(n for by in shard.counts.values() for v, n in by.items() if v != "valid") > 0
    assert r.wall_engine_s == sum(2 * wall_runner.estimate_s(generate.generate(s)) for s in range(1, 41))
    assert r.seeds_per_s == 40 / r.wall_s and "80 runs" in r.note()


def _shard_doc() -> dict:
    """A shard file's JSON, with a shrunk failure and a focus: every field merge and summary read."""
    failure = shards.Failure(
        seed=1,
        strategy="remote",
        verdict="invalid",
        first="2 pages lost",
        kinds=["conservation"],
        faults=3,
        cpus=4,
        file="seed-1.toml",
        shrunk={"file": "seed-1-shrunk.toml", "faults": 1, "cpus": 2, "runs": 9, "first": "x", "kinds": []},
    )
    counts = {"remote": dict.fromkeys(shards.VERDICTS, 0) | {"invalid": 1}}
    shard = shards.Shard("1-4", ["remote"], [], 0, 2, [1, 2], counts, [failure], faults=["rpc"], max_failures=1)
    return shard.to_json()


@pytest.mark.parametrize("value", [None, "x", -1, 2**31, 1.5, [], {}, [None], {"remote": None}])
def test_each_field_of_a_shard_made_hostile_is_a_shard_error_naming_the_file_and_field_or_merges(tmp_path, value):
    """Every field (and a failure's) set to `value`, or deleted: read refuses it with a ShardError naming
    the file and the field, or the shard merges and its summary prints; nothing else is raised."""
    path = tmp_path / "shard-0.json"
    for where in hostile.paths(_shard_doc(), skip=("format",)):
        for change in (value, hostile.DELETE):
            path.write_text(json.dumps(hostile.mutated(_shard_doc(), where, change)))
            try:
                merged = shards.merge([(str(path), shards.read(str(path)))])
            except shards.ShardError as err:
                named = where[-2] if isinstance(where[-1], int) else where[-1]
                assert str(path) in str(err) and str(named) in str(err), (where, str(err))
                continue
            shards.summary(merged)
            shards.exit_code(merged)


def test_a_shard_with_counts_null_is_refused_by_sweep_merge_with_exit_2(tmp_path, capsys):
    doc = _shard_doc()
    doc["counts"] = None
    path = tmp_path / "shard-0.json"
    path.write_text(json.dumps(doc))
    assert cli.main(["chaos", "sweep-merge", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "counts is None" in err


def test_a_kernel_a_strategy_cannot_drain_under_is_refused_before_anything_runs(tmp_path, capsys):
    """`chaos sweep --kernel 5.19` with remote among its strategies, and `chaos run --kernel 5.19` of a
    file that lists remote (or with --strategy qpw), exit 2 naming the kernel and the strategy, and
    write nothing; the strategies that drain under it are taken."""
    out = tmp_path / "out"
    shipped = os.path.join(ROOT, "deploy", "chaos", "kill-node.toml")
    for argv, says in (
        (["chaos", "sweep", "--seeds", "1", "--kernel", "5.19", "--out", str(out)], "strategy remote cannot run"),
        (["chaos", "run", shipped, "--kernel", "5.19", "--engine", "virtual", "--out", str(out)], "strategy remote"),
        (
            ["chaos", "run", shipped, "--kernel", "5.19", "--strategy", "qpw", "--out", str(out)],
            "kill-node: cluster.kernel '5.19': strategy qpw cannot run under it",
        ),
    ):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert says in err and "local_lock" in err, (argv, err)
        assert not out.exists(), argv
    argv = ["chaos", "sweep", "--seeds", "1", "--kernel", "5.19", "--strategies", "workqueue", "--out", str(out)]
    assert cli.main(argv) == 0
    shard = shards.read(str(out / "sweep.json"))
    assert shard.kernel == "5.19" and "kernel profile: 5.19" in capsys.readouterr().out


def test_a_wall_sweeps_failure_file_says_to_run_it_again_not_to_replay_it(tmp_path):
    """A wall run does not replay: the failure's file says how to run it again, and the shard its engine."""
    plan = driver.Plan(strategies=("remote",), runner=fake_runner, engine="wall")
    failing = next(s for s in range(1, 121) if overlap_kill_and_partition(generate.generate(s)))
    shard = driver.sweep(plan, [failing], str(tmp_path), 1, False, str(failing))
    (f,) = shard.failures
    with open(f.file) as text:
        note = text.read()
    assert f"Run again: pcpsim chaos run {f.file}\n" in note and "--engine virtual" not in note
    assert shard.engine == "wall" and "engine: wall" in shards.summary(shard)
