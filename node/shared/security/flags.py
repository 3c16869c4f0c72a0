"""The command-line flags (and PCPSIM_* variables) that give a process its Security."""

import argparse
import dataclasses
import os
from collections.abc import Callable
from typing import NoReturn

from node.shared.security.certs import load_tls
from node.shared.security.settings import INSECURE, Security, SecurityError
from node.shared.security.tokens import load_token_file


def add_arguments(p: argparse.ArgumentParser, env: bool = True) -> None:
    """--token-file and the TLS flags; each also a PCPSIM_* variable when `p` takes env=."""

    def arg(*names, var, **kw):
        if env:
            p.add_argument(*names, env=var, **kw)
        else:
            p.add_argument(*names, default=os.environ.get(var) or kw.pop("default", None), **kw)

    arg(
        "--token-file",
        var="PCPSIM_TOKEN_FILE",
        help="file of ROLE=SECRET lines (node, operator) for bearer-token authentication; "
        "without it RPCs are not authenticated",
    )
    arg("--tls-cert", var="PCPSIM_TLS_CERT", help="PEM certificate: serve TLS, and present it when dialling")
    arg("--tls-key", var="PCPSIM_TLS_KEY", help="PEM private key of --tls-cert")
    arg(
        "--tls-ca",
        var="PCPSIM_TLS_CA",
        help="PEM CA: dial with TLS and check servers (and clients, with --tls-client-auth) against it",
    )
    if env:
        p.add_argument(
            "--tls-client-auth",
            action="store_true",
            env="PCPSIM_TLS_CLIENT_AUTH",
            help="require client certificates signed by --tls-ca (mutual TLS)",
        )
    else:
        p.add_argument("--tls-client-auth", action="store_true", help=argparse.SUPPRESS)


def from_args(args, role: str, error: Callable[[str], NoReturn]) -> Security:
    """The Security the flags describe; `error` (parser.error) on a bad file."""
    try:
        sec = load_token_file(args.token_file, role) if args.token_file else INSECURE
        return dataclasses.replace(sec, tls=load_tls(args.tls_cert, args.tls_key, args.tls_ca, args.tls_client_auth))
    except SecurityError as err:
        error(str(err))
