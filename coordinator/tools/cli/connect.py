"""How a command reaches a running cluster: the coordinator's address (--coordinator, or the
state file `cluster up` writes), the operator's credentials (flags and variables, or what the
state file names) and a Coordinator stub dialed with them."""

import dataclasses
import json
import os

from coordinator.tools.cli.errors import CliError
from node.shared import security

DEFAULT_STATE = os.path.join(".pcpsim", "cluster.json")


def add_target(p) -> None:
    """The flags that say which cluster a command talks to and how it authenticates."""
    p.add_argument(
        "--state",
        default=os.environ.get("PCPSIM_STATE", DEFAULT_STATE),
        help="cluster state file written by `cluster up` (default %(default)s)",
    )
    p.add_argument("--coordinator", help="coordinator address HOST:PORT (overrides --state)")
    security.add_arguments(p, env=False)


def coordinator_address(args) -> str:
    if args.coordinator:
        return args.coordinator
    try:
        with open(args.state) as f:
            return json.load(f)["coordinator"]
    except FileNotFoundError:
        raise CliError(
            f"no cluster state file at {args.state}: start one with `pcpsim cluster up`, "
            "or pass --coordinator HOST:PORT"
        ) from None
    except (ValueError, KeyError) as err:
        raise CliError(f"state file {args.state} is not valid: {err}") from None


def _state_file(args) -> dict:
    try:
        with open(args.state) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}
    except ValueError as err:
        raise CliError(f"state file {args.state} is not valid: {err}") from None


def client_security(args) -> security.Security:
    """The operator's credentials: flags and $PCPSIM_TOKEN_FILE/TLS variables first, else what
    the state file names."""
    doc = _state_file(args) if not args.coordinator else {}
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
