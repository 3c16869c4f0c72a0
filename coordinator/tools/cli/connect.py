"""How a command reaches a running cluster: the coordinator's address (--coordinator, or the
state file `cluster up` writes), the operator's credentials (flags and variables, or what the
state file names) and a Coordinator stub dialed with them."""

import argparse
import dataclasses
import json
import os

from coordinator.tools.cli.errors import CliError
from node.shared import security
from node.shared.config import dialable

DEFAULT_STATE = os.path.join(".pcpsim", "cluster.json")


def add_target(p) -> None:
    """The flags that say which cluster a command talks to and how it authenticates."""
    p.add_argument(
        "--state",
        default=os.environ.get("PCPSIM_STATE", DEFAULT_STATE),
        help="cluster state file written by `cluster up` (default %(default)s)",
    )
    p.add_argument("--coordinator", type=dialable, help="coordinator address HOST:PORT (overrides --state)")
    security.add_arguments(p, env=False)


def coordinator_address(args) -> str:
    if args.coordinator:
        return args.coordinator
    doc = read_state(args.state)
    if doc is None:
        raise CliError(
            f"no cluster state file at {args.state}: start one with `pcpsim cluster up`, "
            "or pass --coordinator HOST:PORT"
        )
    return doc["coordinator"]


def read_state(path: str) -> dict | None:
    """The state file `cluster up` writes, with the fields a command reads checked (None: there is none).
    A file of another shape is a CliError naming the field, not a traceback from deep in a command."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise CliError(f"state file {path}: cannot read: {err.strerror}") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise CliError(f"state file {path} is not valid: {err}") from None
    if not isinstance(doc, dict):
        raise CliError(f"state file {path} is not valid: not a JSON object")
    coordinator = doc.get("coordinator")
    try:
        dialable(coordinator if isinstance(coordinator, str) else "")
    except argparse.ArgumentTypeError as err:
        raise CliError(f"state file {path} is not valid: coordinator: {err}") from None
    if not isinstance(doc.get("token_file"), str | None):
        raise CliError(f"state file {path} is not valid: token_file: not a path")
    tls = doc.get("tls")
    if tls is not None and not (isinstance(tls, dict) and all(isinstance(v, str | bool | None) for v in tls.values())):
        raise CliError(f"state file {path} is not valid: tls: not an object of paths")
    return doc


def client_security(args) -> security.Security:
    """The operator's credentials: flags and $PCPSIM_TOKEN_FILE/TLS variables first, else what
    the state file names."""
    doc = (read_state(args.state) or {}) if not args.coordinator else {}
    tls = doc.get("tls") or {}
    token_file = args.token_file or doc.get("token_file")
    try:
        sec = security.load_token_file(token_file, security.OPERATOR) if token_file else security.INSECURE
        return dataclasses.replace(
            sec,
            tls=security.load_tls(
                args.tls_cert or tls.get("cert"), args.tls_key or tls.get("key"), args.tls_ca or tls.get("ca"), False
            ),
        )
    except security.SecurityError as err:
        raise CliError(str(err)) from None


def stub(args):
    """(channel, CoordinatorStub) to the cluster `args` names; also sets args.security, with which
    a command dials the cluster's nodes."""
    # Here, not at the top: the parser adds this module's flags to every command, and the virtual
    # engine's commands load no grpc.
    from node.api.v1 import pcpsim_pb2_grpc as pb_grpc

    args.security = client_security(args)
    channel = security.channel(coordinator_address(args), args.security)
    return channel, pb_grpc.CoordinatorStub(channel)
