"""Every knob of `python -m node` and `python -m coordinator` is a flag and an environment
variable: the flag wins, a bad variable is refused like a bad flag, and the node derives
its CPU number and role the way a StatefulSet pod needs (hostname ordinal, role map)."""

import subprocess
import sys

import pytest

from coordinator.__main__ import parse_args as coordinator_args
from coordinator.tools.cli import cluster as cli  # the launcher: `pcpsim cluster up`
from node.__main__ import parse_args as node_args
from node.shared.config import advertised, advertised_metrics, cpu_from_hostname, split_host_port
from node.shared.cpulist import parse_cpu_list, role_for_cpu

COORD = {"PCPSIM_COORDINATOR": "pcpsim-coordinator:50051"}


def node(argv=(), env=None, hostname="vm"):
    return node_args(list(argv), environ={**COORD, **(env or {})}, hostname=lambda: hostname)


def refused(parse, capsys, *args, **kwargs) -> str:
    with pytest.raises(SystemExit) as info:
        parse(*args, **kwargs)
    assert info.value.code == 2
    return capsys.readouterr().err


def test_every_node_knob_comes_from_the_environment():
    """Each node flag has a PCPSIM_* variable, parsed by the flag's own type."""
    args = node(
        env={
            "PCPSIM_CPU": "3",
            "PCPSIM_LISTEN": "0.0.0.0:50051",
            "PCPSIM_ADVERTISE": "pcpsim-node-3.pcpsim-node.ns.svc:50051",
            "PCPSIM_METRICS_LISTEN": "0.0.0.0:9100",
            "PCPSIM_ROLE": "idle",
            "PCPSIM_SEED": "7",
            "PCPSIM_PERIOD_MS": "10",
            "PCPSIM_BUSY_MS": "2",
            "PCPSIM_DEADLINE_MS": "5",
            "PCPSIM_WORKING_SET": "100",
            "PCPSIM_IRQ_HZ": "50",
            "PCPSIM_HEARTBEAT_MS": "25",
            "PCPSIM_REGISTER_TIMEOUT_S": "300",
        }
    )
    assert (args.cpu, args.coordinator, args.listen, args.role, args.seed) == (
        3,
        "pcpsim-coordinator:50051",
        "0.0.0.0:50051",
        "idle",
        7,
    )
    assert args.advertise == "pcpsim-node-3.pcpsim-node.ns.svc:50051"
    assert args.metrics_listen == ("0.0.0.0", 9100)
    assert (
        args.period_ms,
        args.busy_ms,
        args.deadline_ms,
        args.working_set,
        args.irq_hz,
        args.heartbeat_ms,
        args.register_timeout_s,
    ) == (10.0, 2.0, 5.0, 100, 50.0, 25.0, 300.0)


def test_every_coordinator_knob_comes_from_the_environment():
    args = coordinator_args(
        [],
        environ={
            "PCPSIM_NODES": "8",
            "PCPSIM_LISTEN": "0.0.0.0:50051",
            "PCPSIM_METRICS_LISTEN": "off",
            "PCPSIM_ZONE_MB": "2048",
            "PCPSIM_ZONE_USED": "0.5",
            "PCPSIM_STRATEGY": "workqueue",
            "PCPSIM_TIME_SCALE": "100",
            "PCPSIM_LEASE_MS": "500",
            "PCPSIM_FLUSH_TIMEOUT_MS": "900",
            "PCPSIM_FAILURE_TIMEOUT_MS": "3000",
            "PCPSIM_DEAD_TIMEOUT_MS": "6000",
        },
    )
    assert (args.nodes, args.listen, args.metrics_listen, args.zone_mb, args.zone_used, args.strategy) == (
        8,
        "0.0.0.0:50051",
        None,
        2048,
        0.5,
        "workqueue",
    )
    assert (args.time_scale, args.lease_ms, args.flush_timeout_ms, args.failure_timeout_ms, args.dead_timeout_ms) == (
        100.0,
        500,
        900,
        3000,
        6000,
    )


def test_a_dead_timeout_not_above_the_failure_timeout_is_refused(capsys):
    """A node must stop using its pages (its lease is the failure timeout) before the coordinator
    may take them (the dead timeout): a configuration that breaks this is refused, naming both."""
    with pytest.raises(SystemExit) as exit_:
        coordinator_args(["--nodes", "2", "--failure-timeout-ms", "2000", "--dead-timeout-ms", "2000"], environ={})
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--dead-timeout-ms (2000) must exceed --failure-timeout-ms (2000)" in err


def test_the_machines_nohz_full_is_a_cpu_list(capsys):
    """--nohz-full (PCPSIM_NOHZ_FULL) is a CPU list as the nodes' PCPSIM_ISOLATED is, bounded as it is:
    the manifests give both the same value whatever the node count (the coordinator leaves out the CPUs
    beyond --nodes). A list that is not one is refused, naming the flag; not given, it is empty."""
    assert coordinator_args(["--nodes", "4"], environ={"PCPSIM_NOHZ_FULL": "2-3"}).nohz_full == [2, 3]
    assert coordinator_args(["--nodes", "3"], environ={"PCPSIM_NOHZ_FULL": "2-3"}).nohz_full == [2, 3]
    assert coordinator_args(["--nodes", "4"], environ={}).nohz_full == []
    for bad in ("2-4096", "x", "3-2"):
        with pytest.raises(SystemExit) as exit_:
            coordinator_args(["--nodes", "4", "--nohz-full", bad], environ={})
        assert exit_.value.code == 2
        assert "--nohz-full: " in capsys.readouterr().err


def test_defaults_are_unchanged_without_flags_or_variables():
    """No variable set: the process's defaults, loopback and a system-chosen port."""
    args = node(["--cpu", "0"])
    assert (args.listen, args.metrics_listen, args.role, args.advertise) == (
        "127.0.0.1:0",
        ("127.0.0.1", 0),
        "housekeeping",
        None,
    )
    c = coordinator_args(["--nodes", "2"], environ={})
    assert (c.listen, c.metrics_listen, c.strategy, c.zone_mb) == ("127.0.0.1:0", ("127.0.0.1", 0), "remote", 1024)


def test_a_flag_wins_over_its_variable():
    args = node(
        ["--cpu", "1", "--listen", "127.0.0.1:7000", "--seed", "3"],
        env={"PCPSIM_CPU": "5", "PCPSIM_LISTEN": "0.0.0.0:50051", "PCPSIM_SEED": "9"},
    )
    assert (args.cpu, args.listen, args.seed) == (1, "127.0.0.1:7000", 3)
    assert coordinator_args(["--nodes", "3"], environ={"PCPSIM_NODES": "9"}).nodes == 3


def test_an_empty_variable_counts_as_unset():
    assert node(["--cpu", "0"], env={"PCPSIM_LISTEN": "", "PCPSIM_ROLE": " "}).listen == "127.0.0.1:0"


@pytest.mark.parametrize(
    "flag, var, value, message",
    [
        ("--cpu", "PCPSIM_CPU", "x", "not a whole number: 'x'"),
        ("--cpu", "PCPSIM_CPU", "-1", "must be in 0..1023, got -1"),
        ("--cpu", "PCPSIM_CPU", "1024", "must be in 0..1023, got 1024"),
        ("--role", "PCPSIM_ROLE", "boss", "invalid choice: 'boss'"),
        ("--listen", "PCPSIM_LISTEN", "nohost", "expected HOST:PORT, got 'nohost'"),
        ("--coordinator", "PCPSIM_COORDINATOR", "coordinator:0", "port 0 cannot be dialled"),
        ("--advertise", "PCPSIM_ADVERTISE", "a:b", "expected HOST:PORT"),
        ("--metrics-listen", "PCPSIM_METRICS_LISTEN", "9100", "expected HOST:PORT or 'off'"),
        ("--period-ms", "PCPSIM_PERIOD_MS", "0", "must be > 0, got 0"),
        ("--isolated", "PCPSIM_ISOLATED", "3-1", "bad CPU list item '3-1'"),
        # Before 2026-12-06 this built a set of 10**11 CPU numbers.
        ("--isolated", "PCPSIM_ISOLATED", "0-99999999999", "CPU list item '0-99999999999' is outside 0-1023"),
    ],
)
def test_a_bad_variable_gets_the_bad_flags_error(capsys, flag, var, value, message):
    """Same message and exit status 2; the variable's message names the variable."""
    base = [] if flag == "--cpu" else ["--cpu", "0"]
    by_flag = refused(node, capsys, [*base, f"{flag}={value}"])
    by_env = refused(node, capsys, base, env={var: value})
    assert f"argument {flag}: {message}" in by_flag
    assert f"argument {flag} (from {var}={value!r}): {message}" in by_env


def test_a_bad_coordinator_variable_is_refused(capsys):
    err = refused(coordinator_args, capsys, [], environ={"PCPSIM_NODES": "0"})
    assert "argument --nodes (from PCPSIM_NODES='0'): must be in 1..1024, got 0" in err
    err = refused(coordinator_args, capsys, [], environ={"PCPSIM_NODES": "2", "PCPSIM_ZONE_USED": "1.5"})
    assert "PCPSIM_ZONE_USED" in err and "must be in [0, 1)" in err
    assert "--nodes (or PCPSIM_NODES)" in refused(coordinator_args, capsys, [], environ={})


def test_on_off_variables_take_the_usual_words(capsys):
    assert node(env={"PCPSIM_CPU_FROM_HOSTNAME": "true"}, hostname="pcpsim-node-2").cpu == 2
    assert node(env={"PCPSIM_CPU_FROM_HOSTNAME": "0", "PCPSIM_CPU": "1"}, hostname="pcpsim-node-2").cpu == 1
    err = refused(node, capsys, env={"PCPSIM_CPU_FROM_HOSTNAME": "maybe"})
    assert "PCPSIM_CPU_FROM_HOSTNAME='maybe'" in err and "expected 1/0" in err


def test_the_cpu_number_comes_from_a_statefulset_pods_hostname(capsys):
    assert node(["--cpu-from-hostname"], hostname="pcpsim-node-11").cpu == 11
    assert node(["--cpu-from-hostname"], hostname="pcpsim-node-3.pcpsim-node.ns.svc.cluster.local").cpu == 3
    assert node(["--cpu-from-hostname", "--hostname", "web-5"], hostname="vm").cpu == 5
    err = refused(node, capsys, ["--cpu-from-hostname"], hostname="buildbox")
    assert "hostname 'buildbox' does not end in -N" in err


def test_cpu_and_cpu_from_hostname_follow_flag_over_env(capsys):
    """A --cpu flag beats PCPSIM_CPU_FROM_HOSTNAME; both at one level is an error."""
    assert node(["--cpu", "2"], env={"PCPSIM_CPU_FROM_HOSTNAME": "1"}, hostname="x-7").cpu == 2
    assert node(["--cpu-from-hostname"], env={"PCPSIM_CPU": "1"}, hostname="x-7").cpu == 7
    assert "both given" in refused(node, capsys, ["--cpu", "1", "--cpu-from-hostname"], hostname="x-7")
    assert "both given" in refused(
        node, capsys, env={"PCPSIM_CPU": "1", "PCPSIM_CPU_FROM_HOSTNAME": "1"}, hostname="x-7"
    )
    assert "the CPU number is required" in refused(node, capsys)


@pytest.mark.parametrize(
    "cpu, role",
    [(0, "housekeeping"), (1, "housekeeping"), (2, "isolated-preemptible"), (3, "isolated-rt"), (9, "housekeeping")],
)
def test_each_pod_derives_its_role_from_the_shared_role_map(cpu, role):
    env = {"PCPSIM_CPU_FROM_HOSTNAME": "1", "PCPSIM_ISOLATED": "2-3", "PCPSIM_RT": "3"}
    assert node(env=env, hostname=f"pcpsim-node-{cpu}").role == role


def test_role_follows_flag_over_env(capsys):
    env = {"PCPSIM_CPU": "3", "PCPSIM_ISOLATED": "2-3", "PCPSIM_RT": "3"}
    assert node(["--role", "idle"], env=env).role == "idle"  # e.g. cluster up's --role under a user's env
    assert node(["--isolated", "3"], env={"PCPSIM_CPU": "3", "PCPSIM_ROLE": "idle"}).role == "isolated-preemptible"
    assert "both given" in refused(node, capsys, env={**env, "PCPSIM_ROLE": "idle"})
    assert "both given" in refused(node, capsys, ["--cpu", "3", "--role", "idle", "--rt", "3"])
    assert "RT CPUs [3] are not isolated" in refused(node, capsys, env={"PCPSIM_CPU": "1", "PCPSIM_RT": "3"})


def test_cpu_list_parser_is_shared_with_the_launcher():
    """The launcher (`pcpsim cluster up`) parses CPU lists with the same parser as nodes; bounded lists keep
    their message."""
    assert cli.parse_cpu_list is parse_cpu_list
    assert parse_cpu_list("0-1, 3", 4) == [0, 1, 3]
    assert parse_cpu_list("", 4) == []
    assert parse_cpu_list("2-3,17") == [2, 3, 17]
    with pytest.raises(ValueError, match="outside 0-3"):
        parse_cpu_list("4", 4)
    with pytest.raises(ValueError, match="expected N or N-M"):
        parse_cpu_list("a")
    with pytest.raises(ValueError, match="outside 0-1023"):  # a node's list, before it knows the cluster
        parse_cpu_list("1000-1024")
    assert [role_for_cpu(c, [2, 3], [3]) for c in range(4)] == cli.assign_roles(4, [2, 3], [3])


def test_the_registered_address_is_the_advertised_one():
    assert (
        advertised("0.0.0.0:50051", 50051, "pcpsim-node-3.pcpsim-node.ns.svc:50051")
        == "pcpsim-node-3.pcpsim-node.ns.svc:50051"
    )
    assert advertised("127.0.0.1:0", 41234, None) == "127.0.0.1:41234"
    assert advertised("0.0.0.0:0", 41234, "node3:0") == "node3:41234"
    assert advertised("[::]:0", 41234, None) == "[::]:41234"
    assert advertised_metrics("0.0.0.0:9100", "node3:50051") == "node3:9100"
    assert advertised_metrics("10.0.0.5:9100", "node3:50051") == "10.0.0.5:9100"
    assert advertised_metrics("127.0.0.1:9100", None) == "127.0.0.1:9100"
    assert split_host_port("[fe80::1]:80") == ("fe80::1", 80)
    with pytest.raises(ValueError, match="brackets"):
        split_host_port("fe80::1:80")
    assert cpu_from_hostname("a-b-12") == 12


def test_help_names_every_variable():
    out = subprocess.run([sys.executable, "-m", "node", "--help"], capture_output=True, text=True, check=True).stdout
    for var in (
        "PCPSIM_CPU]",
        "PCPSIM_COORDINATOR",
        "PCPSIM_LISTEN",
        "PCPSIM_ADVERTISE",
        "PCPSIM_METRICS_LISTEN",
        "PCPSIM_ROLE",
        "PCPSIM_ISOLATED",
        "PCPSIM_RT",
        "PCPSIM_CPU_FROM_HOSTNAME",
    ):
        assert var in out.replace("\n", " ").replace("  ", ""), var
