"""Scenario files: every shipped one loads, together they cover every fault kind, and a bad
field is refused with an error that names the file and the field."""

import glob
import os

import pytest

from coordinator.tools.chaos import plan, scenario
from coordinator.tools.chaos.scenario import KINDS, ScenarioError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIPPED = sorted(glob.glob(os.path.join(ROOT, "deploy", "chaos", "*.toml")))

VALID = {
    "name": "t",
    "duration_s": 8,
    "heal_s": 3,
    "cluster": {"cpus": 4, "isolated": "2-3", "rt": "3"},
    "faults": [{"kind": "kill-node", "cpu": 1, "at_s": 1.0, "heal_after_s": 1.0}],
}


def test_at_least_ten_shipped_scenarios_cover_every_fault_kind_and_every_strategy():
    loaded = [scenario.load(p) for p in SHIPPED]
    assert len(loaded) >= 10
    assert {f.kind for s in loaded for f in s.faults} == set(KINDS)
    assert all(set(s.strategies) == set(scenario.STRATEGIES) for s in loaded)
    assert len({s.name for s in loaded}) == len(loaded)
    # RPC faults in both directions, on both sides, and every effect.
    rpc = [f for s in loaded for f in s.faults if f.kind == "rpc"]
    assert {(f.side, f.direction) for f in rpc} >= {
        ("node", "in"),
        ("node", "out"),
        ("coordinator", "in"),
        ("coordinator", "out"),
    }
    assert all(any(getattr(f, e) for f in rpc) for e in ("delay_ms", "drop", "drop_reply", "fail"))


def test_a_valid_document_parses_with_defaults():
    s = scenario.parse(VALID)
    assert s.roles() == ["housekeeping", "housekeeping", "isolated-preemptible", "isolated-rt"]
    assert s.strategies == ("workqueue", "remote", "rcu-swap", "qpw") and s.seed == 1
    assert s.faults[0].heal_at_s == 2.0
    assert s.cluster.noise == "none"  # timed wake-ups on time under virtual time unless the file says
    assert scenario.parse(_with("cluster.noise", "quiet")).cluster.noise == "quiet"
    assert s.cluster.kernel == "6.1"  # the kernel profile of cluster up and compare
    assert scenario.parse(_with("cluster.kernel", "6.19")).cluster.kernel == "6.19"


def _with(path: str, value):
    """VALID with the field at dotted `path` set to `value` (None: removed)."""
    import copy

    doc = copy.deepcopy(VALID)
    keys = path.split(".")
    node = doc
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node.setdefault(k, {})
    if value is None:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return doc


BAD = {
    "no name": (_with("name", None), "name: required"),
    "typo at the top": (_with("duraton_s", 5), "duraton_s: unknown field"),
    "duration a string": (_with("duration_s", "8"), "duration_s: a number"),
    "heal longer than the run": (_with("heal_s", 9), "heal_s (9) must be shorter than duration_s"),
    "unknown strategy": (_with("strategies", ["remote", "rcu"]), "strategies:"),
    "no strategies": (_with("strategies", []), "strategies:"),
    "too many cpus": (_with("cluster.cpus", 65), "cluster.cpus: an integer in [2, 64]"),
    "bool for an int": (_with("cluster.cpus", True), "cluster.cpus: an integer"),
    "bad cpu list": (_with("cluster.isolated", "3-2"), "cluster.isolated:"),
    "isolated out of range": (_with("cluster.isolated", "2-5"), "cluster.isolated: CPU 5"),
    "rt not isolated": (_with("cluster.rt", "1"), "cluster.rt: CPUs [1] are not in cluster.isolated"),
    "no housekeeping": (_with("cluster.isolated", "0-3"), "at least one CPU must stay housekeeping"),
    "dead not above failure": (_with("cluster.dead_timeout_ms", 500), "cluster.dead_timeout_ms (500) must exceed"),
    "fencing not a bool": (_with("cluster.unsafe_skip_fencing", 1), "cluster.unsafe_skip_fencing:"),
    "unknown noise model": (_with("cluster.noise", "loud"), "cluster.noise: one of model, quiet, none, got 'loud'"),
    "noise not a name": (_with("cluster.noise", ["model"]), "cluster.noise: one of"),
    "unknown kernel": (_with("cluster.kernel", "6.20"), "cluster.kernel: one of ['5.19', '6.1'"),
    "kernel not a name": (_with("cluster.kernel", 6.1), "cluster.kernel: one of"),
    "a bug-replay kernel": (_with("cluster.kernel", "6.2-up"), "(`pcpsim kernels`), got '6.2-up'"),
    "remote under 5.19": (
        _with("cluster.kernel", "5.19"),
        "cluster.kernel '5.19': strategy remote cannot run under it: kernel 5.19 guards the pcp with a local_lock",
    ),
    "unknown kind": (_with("faults.0.kind", "kil-node"), "faults[0].kind: one of"),
    "fault without cpu": (_with("faults.0.cpu", None), "faults[0].cpu: required"),
    "cpu out of range": (_with("faults.0.cpu", 4), "faults[0].cpu: an integer in [0, 3]"),
    "negative start": (_with("faults.0.at_s", -1), "faults[0].at_s:"),
    "heal in the healing phase": (_with("faults.0.heal_after_s", 4.5), "faults[0].heal_after_s: healed at 5.5s"),
    "field of another kind": (_with("faults.0.factor", 3), "faults[0].factor: unknown field"),
    "faults not a list": (_with("faults", {"kind": "kill-node"}), "faults: an array of tables"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_field_is_refused_naming_it(case):
    doc, message = BAD[case]
    with pytest.raises(ScenarioError) as err:
        scenario.parse(doc)
    assert message in str(err.value)


def test_a_kernel_without_a_remote_pcp_lock_takes_the_strategies_that_drain_under_it():
    """5.19's pcp is a local_lock: workqueue (its own) and rcu-swap (a what-if) drain it, remote and qpw
    cannot, and each refusal names the strategy (the coordinator's rule, drain_all.unrunnable)."""
    doc = _with("strategies", ["workqueue", "rcu-swap"]) | {"cluster": VALID["cluster"] | {"kernel": "5.19"}}
    ok = scenario.parse(doc)
    assert ok.cluster.kernel == "5.19" and ok.strategies == ("workqueue", "rcu-swap")
    scenario.check_kernel("5.19", ["workqueue", "rcu-swap"])
    with pytest.raises(ScenarioError, match="strategy qpw cannot run under it"):
        scenario.check_kernel("5.19", ["workqueue", "qpw"])
    assert scenario.with_kernel(ok, "6.19").cluster.kernel == "6.19"


@pytest.mark.parametrize(
    "fault,message",
    [
        (
            {"kind": "rpc", "side": "node", "cpu": 1, "at_s": 1, "heal_after_s": 1},
            "faults[0]: a rule needs a delay, drop, drop_reply or fail: one with none does nothing",
        ),
        ({"kind": "rpc", "side": "node", "at_s": 1, "heal_after_s": 1, "drop": 0.5}, "faults[0].cpu: required"),
        ({"kind": "rpc", "side": "edge", "at_s": 1, "heal_after_s": 1, "drop": 0.5}, "faults[0].side: one of"),
        (
            {"kind": "rpc", "side": "coordinator", "direction": "out", "at_s": 1, "heal_after_s": 1, "drop_reply": 0.5},
            'drop_reply: only for direction "in"',
        ),
        (
            {"kind": "rpc", "side": "coordinator", "at_s": 1, "heal_after_s": 1, "drop": 1.5},
            "faults[0].drop: a number in [0, 1]",
        ),
        ({"kind": "slow-cpu", "cpu": 1, "at_s": 1, "heal_after_s": 1}, "faults[0].factor: required"),
        (
            {"kind": "slow-cpu", "cpu": 1, "at_s": 1, "heal_after_s": 1, "factor": 0.5},
            "faults[0].factor: a number in [1, 1000]",
        ),
    ],
)
def test_rpc_and_slow_cpu_fields_are_checked(fault, message):
    with pytest.raises(ScenarioError) as err:
        scenario.parse({**VALID, "faults": [fault]})
    assert message in str(err.value)


@pytest.mark.parametrize(
    "fault,workload,message",
    [
        ({"kind": "second-coordinator", "at_s": 1, "heal_after_s": 2}, {}, "faults[0].resume_after_s: required"),
        (
            {"kind": "second-coordinator", "at_s": 1, "heal_after_s": 2, "resume_after_s": 2},
            {},
            "the first coordinator resumes before the heal stops it",
        ),
        (VALID["faults"][0], {"cma_pages": 500}, "workload.cma_pages: a multiple of the pageblock"),
        (VALID["faults"][0], {"cma_pages": 512, "cma_at_s": 9}, "workload.cma_at_s: a number in [0, 5]"),
    ],
)
def test_second_coordinator_and_cma_fields_are_checked(fault, workload, message):
    with pytest.raises(ScenarioError) as err:
        scenario.parse({**VALID, "faults": [fault], "workload": workload})
    assert message in str(err.value)


def test_the_unsafe_switches_become_coordinator_flags():
    sc = scenario.parse({**VALID, "cluster": {**VALID["cluster"], "unsafe_no_epoch": True}})
    assert sc.cluster.unsafe_coordinator_args() == ["--unsafe-no-epoch"]
    assert scenario.parse(VALID).cluster.unsafe_coordinator_args() == []
    every = {k: True for k in (*scenario.NODE_UNSAFE, *scenario.COORDINATOR_UNSAFE)}
    c = scenario.parse({**VALID, "cluster": {**VALID["cluster"], **every}}).cluster
    assert c.unsafe_coordinator_args() == [
        "--unsafe-forget-ranges",
        "--unsafe-no-epoch",
        "--unsafe-declare-dead-on-lost-commit",
    ]
    assert c.unsafe_node_args() == ["--unsafe-skip-fencing", "--unsafe-register-once"]


def test_an_unreadable_or_malformed_file_names_the_file(tmp_path):
    with pytest.raises(ScenarioError, match=r"missing\.toml: cannot read"):
        scenario.load(str(tmp_path / "missing.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ScenarioError, match=r"bad\.toml: not valid TOML"):
        scenario.load(str(bad))
    typo = tmp_path / "typo.toml"
    typo.write_text('name = "x"\nduration_s = 5\n[cluster]\ncpu = 4\n')
    with pytest.raises(ScenarioError, match=r"typo.toml: cluster.cpu: unknown field"):
        scenario.load(str(typo))
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ScenarioError, match=r"binary\.toml: not valid TOML: not UTF-8 \(byte 0: "):
        scenario.load(str(binary))


@pytest.mark.parametrize(
    "name", ["../../../escaped", "/tmp/abs", "a/b", "a\\b", "x\u0000y", "tab\tname", "\x7f", ".", "..", ".hidden"]
)
def test_a_name_that_is_no_plain_file_name_is_refused(name):
    """The name names the run directories (<name>-<strategy> under --out): a path would write outside
    --out or make subdirectories, and a NUL would fail only once other scenarios had run."""
    with pytest.raises(ScenarioError) as err:
        scenario.parse(_with("name", name))
    assert str(err.value).startswith("name: a plain file name") and repr(name) in str(err.value)


def test_plain_names_are_accepted():
    for name in ("t", "sweep-7", "seed-3-rcu-swap-shrunk", "a.b", "a..b", "space in it", "é"):
        assert scenario.parse(_with("name", name)).name == name


@pytest.mark.parametrize(
    "side,direction,method,message",
    [
        ("coordinator", "in", "Heartbeet", "'Heartbeet' matches nothing the coordinator serves"),
        ("node", "out", "ZoneStram.*", "'ZoneStram.*' matches nothing the node sends (the Coordinator service's"),
        ("coordinator", "out", "nothing", "'nothing' matches nothing the coordinator sends"),
        ("coordinator", "out", "[", "'[' is not a valid glob: the '[' at 0 is never closed"),
        ("node", "in", "Register", "'Register' matches nothing the node serves"),  # the coordinator serves it
        ("coordinator", "in", "SetFaults", "'SetFaults' matches nothing"),  # never faulted
    ],
)
def test_an_rpc_method_that_matches_nothing_is_refused_naming_the_file_and_field(
    tmp_path, side, direction, method, message
):
    """A copy of rpc-fail.toml with one method changed: a typo would run as a valid run with no fault."""
    text = open(os.path.join(ROOT, "deploy", "chaos", "rpc-fail.toml"), encoding="utf-8").read()
    assert text.count('method = "*"') == 1
    path = tmp_path / "typo.toml"
    fault = f'side = "{side}"\ndirection = "{direction}"\nmethod = "{method}"'
    path.write_text(text.replace('side = "coordinator"\ndirection = "out"\nmethod = "*"', fault), encoding="utf-8")
    with pytest.raises(ScenarioError) as err:
        scenario.load(str(path))
    assert str(err.value).startswith(f"{path}: faults[2].method: ") and message in str(err.value)


def test_every_method_glob_the_sweep_draws_is_accepted():
    """The sweep's globs (generate.RPC_METHODS, by side and direction) and the messages --rpc-methods
    names are what the scenario check accepts: one set of names, the proto's."""
    from coordinator.tools.chaos.sweep import generate

    for (side, direction), globs in generate.RPC_METHODS.items():
        assert all(_accepted(side, direction, g) for g in globs), (side, direction)
    for message in generate.MESSAGES:
        assert any(_accepted(side, direction, message) for side, direction in generate.RPC_METHODS), message


def _accepted(side: str, direction: str, method: str) -> bool:
    fault = {"kind": "rpc", "side": side, "direction": direction, "method": method, "cpu": 1, "fail": 0.5}
    try:
        scenario.parse({**VALID, "faults": [{**fault, "at_s": 1, "heal_after_s": 1}]})
    except ScenarioError:
        return False
    return True


@pytest.mark.parametrize(
    "a,b,slot",
    [
        (
            {"kind": "kill-coordinator"},
            {"kind": "second-coordinator", "resume_after_s": 0.5},
            "the coordinator's process",
        ),
        ({"kind": "second-coordinator", "resume_after_s": 0.5}, {"kind": "stop-coordinator-mid-drain"}, "coordinator"),
        ({"kind": "kill-node", "cpu": 1}, {"kind": "stop-node", "cpu": 1}, "cpu1's process"),
        (
            {"kind": "slow-cpu", "cpu": 0, "factor": 2},
            {"kind": "slow-cpu", "cpu": 0, "factor": 3},
            "cpu0's cost factor",
        ),
    ],
)
def test_two_faults_on_one_slot_at_once_are_refused_naming_both(a, b, slot):
    """[1, 2] s and [2, 3] s meet at 2 s (the later start runs before the earlier heal): refused; started
    a millisecond after the heal, or on another slot, they are accepted."""
    faults = [{**a, "at_s": 1, "heal_after_s": 1}, {**b, "at_s": 2, "heal_after_s": 1}]
    with pytest.raises(ScenarioError) as err:
        scenario.parse({**VALID, "faults": faults})
    assert "faults[0] and faults[1] both act on" in str(err.value) and slot in str(err.value)
    later = [faults[0], {**faults[1], "at_s": 2.001}]
    assert len(scenario.parse({**VALID, "faults": later}).faults) == 2
    if "cpu" in b:
        other = [faults[0], {**faults[1], "cpu": 2}]
        assert len(scenario.parse({**VALID, "faults": other}).faults) == 2


def test_rpc_and_partition_faults_stack_on_one_cpu():
    faults = [
        {"kind": "partition", "cpu": 1, "at_s": 1, "heal_after_s": 2},
        {"kind": "partition", "cpu": 1, "at_s": 1.5, "heal_after_s": 2},
        {"kind": "rpc", "side": "node", "cpu": 1, "at_s": 1, "heal_after_s": 2, "drop": 0.5},
        {"kind": "rpc", "side": "node", "cpu": 1, "at_s": 1, "heal_after_s": 2, "fail": 0.5},
    ]
    assert len(scenario.parse({**VALID, "faults": faults}).faults) == 4


def test_a_runs_history_records_the_scenario_the_same_from_any_path(tmp_path, monkeypatch):
    """The history's first entry holds every field of the scenario and its file's name, not the path as
    typed: one scenario gives one history from any checkout or working directory."""
    shipped = os.path.join(ROOT, "deploy", "chaos", "mixed.toml")
    copy = tmp_path / "mixed.toml"
    copy.write_bytes(open(shipped, "rb").read())
    monkeypatch.chdir(tmp_path)
    records = [plan.plain_scenario(scenario.load(p)) for p in (shipped, str(copy), "mixed.toml", "./mixed.toml")]
    assert all(r == records[0] for r in records) and records[0]["path"] == "mixed.toml"
