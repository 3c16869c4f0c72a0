"""A pcpsim process's gRPC server, built one way for the node and the coordinator.

Interceptors, outermost first: the handlers in flight (node.shared.in_flight), so the server's stop
waits for every handler it started; authentication, authorization and strict decoding
(node.shared.security), so a refused call reaches nothing else; RPC metrics
(node.shared.rpc_metrics), which then see the status code a domain error maps to; domain
errors and run-time faults (node.shared.interceptors). Message size limits, the port
(with TLS if configured) and the standard health service (node.shared.health) on it.
"""

import logging

import grpc

from node.shared import security
from node.shared.health import Health
from node.shared.in_flight import InFlight
from node.shared.interceptors import ErrorsAndFaultsInterceptor
from node.shared.rpc_metrics import RpcMetricsInterceptor

log = logging.getLogger(__name__)


async def build_server(
    service, add_servicer, servicer, listen: str, sec: security.Security, registry, faults, reply_fields=None
) -> tuple["Server", int, Health]:
    """The server of `service` (a protobuf ServiceDescriptor) with `servicer` added by the
    generated `add_servicer`, bound to `listen` but not started; returns (server, bound
    port, health, NOT_SERVING until told otherwise). `registry` receives the RPC metrics,
    `faults` (node.shared.faults.Faults) are the ones SetFaults sets; `reply_fields` are set on every
    stream reply that has them (node.shared.interceptors)."""
    security.warn(security.process_warning(listen, sec))
    in_flight = InFlight()
    server = grpc.aio.server(
        interceptors=[
            in_flight,
            security.AuthInterceptor(sec, registry),
            RpcMetricsInterceptor(registry, [service]),
            ErrorsAndFaultsInterceptor(faults, [service], reply_fields),
        ],
        options=security.server_options(),
    )
    add_servicer(servicer, server)
    health = await Health.add_to(server, service.full_name)
    port = security.add_port(server, listen, sec)
    return Server(server, in_flight), port, health


# How long a stopped server's handlers get to end once the stop has cancelled them: a cancelled
# handler ends in a pass or two of the loop, so this bounds only one that ignores its cancellation.
HANDLERS_END_S = 1.0


class Server:
    """A built server: `stop` returns once every handler it started has ended."""

    def __init__(self, server: grpc.aio.Server, in_flight: InFlight):
        self._server = server
        self.in_flight = in_flight

    async def start(self) -> None:
        await self._server.start()

    async def stop(self, grace: float) -> None:
        """Stop serving; the calls still open after `grace` seconds are cancelled, and their handlers
        waited for (node.shared.in_flight)."""
        await self._server.stop(grace)
        running = await self.in_flight.wait_ended(HANDLERS_END_S)
        if running:
            log.warning(
                "handlers still running %.1f s after the server stopped: %s", HANDLERS_END_S, ", ".join(running)
            )
