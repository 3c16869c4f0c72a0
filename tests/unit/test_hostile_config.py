"""Hostile input to every parser of configuration: the node's and the coordinator's flags
and PCPSIM_* variables, the `pcpsim` command line, token files, and the results file
`pcpsim report` reads. Each either accepts its input or refuses it with its own clear
error (argparse's exit status 2, SecurityError, ReportError); none raises anything else."""

import contextlib
import json
import math
import os
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordinator.__main__ import parse_args as coordinator_args
from coordinator.tools import cli, compare_against, html_report, report, results_file
from coordinator.tools.cli import build_parser
from node.__main__ import parse_args as node_args
from node.shared import security
from tests import hostile

EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Every variable either process reads, so each parser meets its own and the other's.
VARIABLES = sorted(
    {
        "PCPSIM_CPU",
        "PCPSIM_CPU_FROM_HOSTNAME",
        "PCPSIM_HOSTNAME",
        "PCPSIM_COORDINATOR",
        "PCPSIM_LISTEN",
        "PCPSIM_ADVERTISE",
        "PCPSIM_METRICS_LISTEN",
        "PCPSIM_ROLE",
        "PCPSIM_ISOLATED",
        "PCPSIM_RT",
        "PCPSIM_SEED",
        "PCPSIM_PERIOD_MS",
        "PCPSIM_BUSY_MS",
        "PCPSIM_DEADLINE_MS",
        "PCPSIM_WORKING_SET",
        "PCPSIM_IRQ_HZ",
        "PCPSIM_HEARTBEAT_MS",
        "PCPSIM_REGISTER_TIMEOUT_S",
        "PCPSIM_NODES",
        "PCPSIM_ZONE_MB",
        "PCPSIM_ZONE_USED",
        "PCPSIM_STRATEGY",
        "PCPSIM_TIME_SCALE",
        "PCPSIM_COST_MODEL",
        "PCPSIM_LEASE_MS",
        "PCPSIM_FLUSH_TIMEOUT_MS",
        "PCPSIM_FAILURE_TIMEOUT_MS",
        "PCPSIM_TOKEN_FILE",
        "PCPSIM_TLS_CERT",
        "PCPSIM_TLS_KEY",
        "PCPSIM_TLS_CA",
        "PCPSIM_TLS_CLIENT_AUTH",
    }
)

values = st.one_of(
    st.sampled_from(
        [
            "",
            "0",
            "1",
            "-1",
            "nan",
            "inf",
            "-inf",
            "1e309",
            "99999999999999999999",
            "0x10",
            "1_000",
            "true",
            "off",
            "2-3",
            "3-2",
            "0-1023",
            "0-99999",
            "127.0.0.1:0",
            "[::1]:1",
            "::1:1",
            "host:65536",
            "/dev/null",
            "/etc/shadow",
            "/nonexistent",
            "remote",
            "housekeeping",
            "\x00",
            "é",
            " 1 ",
        ]
    ),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True).map(str),
    st.text(max_size=30),
)


def refused_cleanly(call) -> bool:
    """True if `call` accepted; False if it refused with argparse's exit 2; anything else propagates."""
    try:
        call()
    except SystemExit as err:
        assert err.code == 2, err.code
        return False
    return True


@EXAMPLES
@given(
    st.dictionaries(st.sampled_from(VARIABLES), values, max_size=8),
    st.lists(
        st.sampled_from(
            [
                "--cpu",
                "--nodes",
                "--listen",
                "--zone-mb",
                "--lease-ms",
                "--tls-client-auth",
                "--token-file",
                "--strategy",
                "--isolated",
            ]
        )
        | values,
        max_size=6,
    ),
)
def test_process_flags_and_variables_are_accepted_or_refused_with_exit_2(environ, argv):
    refused_cleanly(lambda: node_args(argv, environ=environ, hostname=lambda: "pcpsim-node-1"))
    refused_cleanly(lambda: coordinator_args(argv, environ=environ))


COMMANDS = [
    "cluster",
    "up",
    "drain",
    "state",
    "audit",
    "compare",
    "report",
    "bench",
    "tokens",
    "--nodes",
    "--isolated",
    "--rt",
    "--strategy",
    "--zone-mb",
    "--zone-used",
    "--seed",
    "--measure-s",
    "--json",
    "--token-file",
    "--tls-ca",
    "--listen-host",
    "--no-auth",
    "--force-all-cpus",
    "--quick",
]


@EXAMPLES
@given(st.lists(st.one_of(st.sampled_from(COMMANDS), values), max_size=8))
def test_the_command_line_is_accepted_or_refused_with_exit_2(argv):
    refused_cleanly(lambda: build_parser().parse_args(argv))


@EXAMPLES
@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "node=",
                    "operator=",
                    "operator.sha256=",
                    "node.sha256=",
                    "node.key=",
                    "operator.key=",
                    "#",
                    "=",
                    "root=",
                ]
            ).flatmap(lambda k: st.text(alphabet=string.printable, max_size=70).map(lambda v: k + v)),
            st.text(max_size=40),
        ),
        max_size=5,
    ).map("\n".join)
)
def test_token_files_are_accepted_or_refused_with_a_security_error(text):
    try:
        roles, keys = security.parse_token_file(text, "tokens")
    except security.SecurityError as err:
        assert "tokens" in str(err)
        return
    assert set(roles) <= set(security.ROLES) and set(keys) <= {security.NODE} and (roles or keys)
    for secret, digest in roles.values():
        assert len(digest) == 32 and (secret is None or len(secret) >= security.MIN_SECRET_CHARS)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)
results_like = st.fixed_dictionaries(
    {"time_scale": json_values, "phases": json_values}, optional={"strategies": json_values, "config": json_values}
)


@EXAMPLES
@given(st.one_of(json_values, results_like))
def test_a_hostile_results_file_is_refused_with_a_report_error(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("r") / "results.json"
    path.write_text(json.dumps(doc))
    try:
        result = results_file.load_results(str(path))
    except results_file.ReportError:
        return
    report.format_report(result)  # an accepted file must also print, and draw its page
    html_report.render(result, str(path))
    with contextlib.suppress(compare_against.NotComparable):  # and beside itself, or refused (`--against`)
        compare_against.format_against(result, result, "a", "b")


def test_garbage_bytes_as_a_results_file_are_refused(tmp_path):
    path = tmp_path / "r.json"
    path.write_bytes(b"\xff\xfe{\x00")
    with pytest.raises(results_file.ReportError):
        results_file.load_results(str(path))


# A real results file (`pcpsim compare --engine virtual --quick --seed 1`, its lists cut to a few items).
REAL = os.path.join(os.path.dirname(__file__), "data", "compare-results.json")
MUTATIONS = {"null": None, "text": "x", "NaN": math.nan, "1e308": 1e308, "negative": -1}


def _named(path: tuple) -> str:
    """The path's last step as a message names it: `key`, or `key[0]` for a list's item."""
    if isinstance(path[-1], int):
        return f"{path[-2]}[{path[-1]}]"
    return str(path[-1])


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_each_field_of_a_real_results_file_made_hostile_is_refused_naming_it_or_read(tmp_path, capsys, mutation):
    """Every field set to null, text, NaN, 1e308 or -1: `report` (tables, page) and `report --against`
    exit 0, or 2 naming the field; never a traceback, and a refused file writes nothing."""
    with open(REAL, encoding="utf-8") as f:
        good = json.load(f)
    path, page = tmp_path / "m.json", tmp_path / "m.html"
    for where in hostile.paths(good):
        path.write_text(json.dumps(hostile.mutated(good, where, MUTATIONS[mutation])))
        for argv in (
            ["report", str(path), "--no-plots", "--html", str(page)],
            ["report", REAL, "--against", str(path)],
        ):
            code = cli.main(argv)
            err = capsys.readouterr().err
            assert code in (0, 2), (where, argv)
            if code == 2:
                assert _named(where) in err and str(path) in err, (where, err)
                assert not page.exists(), where
            page.unlink(missing_ok=True)
