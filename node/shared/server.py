"""A pcpsim process's gRPC server, built one way for the node and the coordinator.

Interceptors, outermost first: authentication, authorization and strict decoding
(node.shared.security), so a refused call reaches nothing else; RPC metrics
(node.shared.rpc_metrics), which then see the status code a domain error maps to; domain
errors and run-time faults (node.shared.interceptors). Message size limits, the port
(with TLS if configured) and the standard health service (node.shared.health) on it.
"""

import grpc

from node.shared import security
from node.shared.health import Health
from node.shared.interceptors import ErrorsAndFaultsInterceptor
from node.shared.rpc_metrics import RpcMetricsInterceptor


async def build_server(
    service, add_servicer, servicer, listen: str, sec: security.Security, registry, faults, reply_fields=None
) -> tuple[grpc.aio.Server, int, Health]:
    """The server of `service` (a protobuf ServiceDescriptor) with `servicer` added by the
    generated `add_servicer`, bound to `listen` but not started; returns (server, bound
    port, health, NOT_SERVING until told otherwise). `registry` receives the RPC metrics,
    `faults` (node.shared.faults.Faults) are the ones SetFaults sets; `reply_fields` are set on every
    stream reply that has them (node.shared.interceptors)."""
    security.warn(security.process_warning(listen, sec))
    server = grpc.aio.server(
        interceptors=[
            security.AuthInterceptor(sec, registry),
            RpcMetricsInterceptor(registry, [service]),
            ErrorsAndFaultsInterceptor(faults, [service], reply_fields),
        ],
        options=security.server_options(),
    )
    add_servicer(servicer, server)
    health = await Health.add_to(server, service.full_name)
    port = security.add_port(server, listen, sec)
    return server, port, health
