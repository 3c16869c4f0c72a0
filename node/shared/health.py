"""The standard gRPC health service (grpc.health.v1.Health) on a process's gRPC port.

Kubernetes' native `grpc:` probes, Docker's HEALTHCHECK (via `python -m node.shared.health_probe`)
and any grpc_health_probe ask it; it needs no other RPC. A process reports NOT_SERVING
until it is ready (a node: registered with the coordinator and its CPU thread running;
the coordinator: serving), SERVING from then on, and NOT_SERVING again once it starts
to stop. The overall status ("") and the process's own service name move together.
"""

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Health:
    def __init__(self, servicer, names: tuple[str, ...]):
        self.servicer = servicer
        self.names = names

    @classmethod
    async def add_to(cls, server: grpc.aio.Server, service: str) -> "Health":
        """Add the health service to `server` (before it starts), reporting NOT_SERVING for
        "" and `service` (a full name, e.g. "pcpsim.v1.Node")."""
        servicer = health.aio.HealthServicer()  # starts with "" SERVING: not yet true
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        self = cls(servicer, ("", service))
        for name in self.names:
            await servicer.set(name, NOT_SERVING)
        return self

    async def serving(self) -> None:
        for name in self.names:
            await self.servicer.set(name, SERVING)

    async def stopping(self) -> None:
        """NOT_SERVING from now on, whatever is set later."""
        await self.servicer.enter_graceful_shutdown()
