"""`python -m node.health_probe [HOST:PORT]`: ask a pcpsim process's gRPC health service.

Exit status 0 if it answers SERVING, 1 if it answers anything else or cannot be reached
(the reason on stderr), 2 on bad usage. The image's HEALTHCHECK runs it with no address:
it then probes this container's own gRPC port, from PCPSIM_LISTEN (a wildcard host
becomes 127.0.0.1). A small stand-in for grpc_health_probe, which is a downloaded binary.
"""

import argparse
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from node.config import WILDCARD_HOSTS, dialable, join_host_port, split_host_port


def check(address: str, service: str = "", timeout: float = 2.0) -> str:
    """The status name the health service at `address` reports for `service`
    ("SERVING", "NOT_SERVING", ...); grpc.RpcError if it cannot be asked."""
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout)
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
    p = argparse.ArgumentParser(prog="python -m node.health_probe",
                                description="Exit 0 if a pcpsim process's gRPC health service says SERVING.")
    p.add_argument("address", nargs="?", type=dialable,
                   help="HOST:PORT (default: this container's PCPSIM_LISTEN)")
    p.add_argument("--service", default="", help="service name to ask about (default: the whole server)")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds (default %(default)s)")
    args = p.parse_args(argv)
    try:
        address = args.address or own_address()
    except ValueError as err:
        p.error(str(err))
    try:
        status = check(address, args.service, args.timeout)
    except grpc.RpcError as err:
        print(f"{address}: {err.code().name}: {err.details()}", file=sys.stderr)
        return 1
    print(f"{address}: {status}")
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
