"""Transport security for both services: bearer tokens with roles, TLS and mutual TLS,
message size limits, and strict decoding of requests. What it protects against and how
to deploy it: docs/security.md.

Layout, one concept a module; settings comes first, each later one builds only on those
before it:
- settings: Security (a process's token, the roles its server accepts, its Tls), Tls,
  SecurityError, INSECURE (no token, no TLS).
- access: the roles (node, coordinator, operator) and ACCESS, the one table of who may call which RPC.
- tokens: token files (`role=secret`, `role.sha256=`, `node.key=`, `coordinator.key=`), CPU-bound
  node tokens `cpuN.<HMAC>`, what the coordinator presents to each node, which role a presented
  token is, and generating fresh secrets.
- certs: reading the certificate, key and CA files (PEM).
- tls: the credentials a server binds and a client dials with.
- limits: the message size limits as server and channel options.
- interceptors: AuthInterceptor (authentication, ACCESS, strict decoding on every server)
  and the client interceptors that put the bearer token on every call (on an asyncio
  channel, every unary call: its streams carry the token per call).
- channels: a sync or asyncio channel with TLS, limits and token, and an asyncio stream's
  opener carrying the token.
- flags: --token-file and the TLS flags, and the Security they describe.
- exposure: the warning a server reachable beyond loopback without TLS or tokens gives.

Callers use this package's names (`from node.shared import security`; `security.channel`):
the modules are its inside. Those of channels, interceptors and tls, which import grpc, are
imported at their first use.
"""

import importlib
from typing import TYPE_CHECKING, Any

from node.shared.security.access import ACCESS, ALWAYS, COORDINATOR, NODE, OPERATOR, ROLES
from node.shared.security.certs import load_tls
from node.shared.security.exposure import exposure_warning, process_warning, warn
from node.shared.security.flags import add_arguments, from_args
from node.shared.security.limits import max_request_bytes, server_options
from node.shared.security.settings import INSECURE, Security, SecurityError, Tls
from node.shared.security.tokens import (
    MIN_SECRET_CHARS,
    bound_token,
    generate_token_files,
    load_token_file,
    parse_token_file,
    toward_cpu,
)

# Grouped by the module each name comes from, as imported above.
__all__ = [  # noqa: RUF022
    "ACCESS",
    "ALWAYS",
    "COORDINATOR",
    "NODE",
    "OPERATOR",
    "ROLES",
    "aio_channel",
    "channel",
    "stream_opener",
    "exposure_warning",
    "process_warning",
    "warn",
    "add_arguments",
    "from_args",
    "AuthInterceptor",
    "MAX_REQUEST_BYTES",
    "server_options",
    "INSECURE",
    "Security",
    "SecurityError",
    "Tls",
    "add_port",
    "load_tls",
    "MIN_SECRET_CHARS",
    "bound_token",
    "generate_token_files",
    "load_token_file",
    "parse_token_file",
    "toward_cpu",
]


# The names of the three modules that import grpc, imported at their first use (below), so that a
# command that only parses the flags (the `pcpsim` parser has them) and runs the virtual engine never
# loads grpc (tests/unit/test_no_grpc.py). mypy and the layering test read the imports here.
if TYPE_CHECKING:
    from node.shared.security.channels import aio_channel, channel, stream_opener
    from node.shared.security.interceptors import AuthInterceptor
    from node.shared.security.tls import add_port
_ON_FIRST_USE = {
    "aio_channel": "channels",
    "channel": "channels",
    "stream_opener": "channels",
    "AuthInterceptor": "interceptors",
    "add_port": "tls",
}


def __getattr__(name: str) -> Any:
    # MAX_REQUEST_BYTES is computed at first use (limits.max_request_bytes), not at import.
    if name == "MAX_REQUEST_BYTES":
        return max_request_bytes()
    if name in _ON_FIRST_USE:
        value = getattr(importlib.import_module(f"{__name__}.{_ON_FIRST_USE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
