"""`python -m node.shared.health_probe [HOST:PORT]`: ask a pcpsim process's gRPC health service.

Exit status 0 if it answers SERVING, 1 if it answers anything else or cannot be reached
(the reason on stderr), 2 on bad usage. The image's HEALTHCHECK runs it with no address:
it then probes this container's own gRPC port, from PCPSIM_LISTEN (a wildcard host
becomes 127.0.0.1), with TLS if the container's PCPSIM_TLS_CA (and, for mutual TLS,
PCPSIM_TLS_CERT/KEY) say so; the health service needs no token. A small stand-in for
grpc_health_probe, which is a downloaded binary.
"""

import argparse
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from node.shared import security
from node.shared.config import WILDCARD_HOSTS, dialable, join_host_port, split_host_port


def check(address: str, service: str = "", timeout: float = 2.0, tls: security.Tls | None = None) -> str:
    """The status name the health service at `address` reports for `service`
    ("SERVING", "NOT_SERVING", ...); grpc.RpcError if it cannot be asked."""
    with security.channel(address, security.Security(tls=tls)) as channel:
        # types-grpcio-health-checking's HealthStub declares no methods (protoc's sets them in __init__).
        reply = health_pb2_grpc.HealthStub(channel).Check(  # type: ignore[attr-defined]
            health_pb2.HealthCheckRequest(service=service), timeout=timeout
        )
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def own_address(environ=os.environ) -> str:
    """This container's gRPC address, from PCPSIM_LISTEN (wildcard host -> 127.0.0.1)."""
    listen = environ.get("PCPSIM_LISTEN", "").strip()
    if not listen:
        raise ValueError("no address given and PCPSIM_LISTEN is not set")
    host, port = split_host_port(listen)
    if port == 0:
        raise ValueError(f"PCPSIM_LISTEN={listen!r} has port 0: give the address")
    return join_host_port("127.0.0.1" if host in WILDCARD_HOSTS else host, port)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m node.shared.health_probe",
        description="Exit 0 if a pcpsim process's gRPC health service says SERVING.",
    )
    p.add_argument("address", nargs="?", type=dialable, help="HOST:PORT (default: this container's PCPSIM_LISTEN)")
    p.add_argument("--service", default="", help="service name to ask about (default: the whole server)")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds (default %(default)s)")
    for flag, var in (
        ("--tls-ca", "PCPSIM_TLS_CA"),
        ("--tls-cert", "PCPSIM_TLS_CERT"),
        ("--tls-key", "PCPSIM_TLS_KEY"),
    ):
        p.add_argument(flag, default=os.environ.get(var) or None, help=f"PEM file, for a TLS server (default ${var})")
    args = p.parse_args(argv)
    try:
        address = args.address or own_address()
        tls = security.load_tls(args.tls_cert, args.tls_key, args.tls_ca, False)
    except ValueError as err:  # SecurityError is one
        p.error(str(err))
    try:
        status = check(address, args.service, args.timeout, tls)
    except grpc.RpcError as err:
        print(f"{address}: {err.code().name}: {err.details()}", file=sys.stderr)
        return 1
    print(f"{address}: {status}")
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
