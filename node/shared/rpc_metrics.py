"""RPC server metrics for both services: one grpc.aio server interceptor.

The servicers stay thin (see node.shared.interceptors): they neither time calls nor count
status codes; this interceptor does, in one place, for the node's Node service and the
coordinator's Coordinator service alike.

- pcpsim_rpc_requests_total{method, code}: every finished call, by status code name.
- pcpsim_rpc_duration_seconds{method}: handler time, request received -> reply ready.

`method` is "Service/Method" (e.g. "Coordinator/Rmqueue"), and only methods of the
service descriptors passed in get series: a call to an unknown method is left to gRPC
(UNIMPLEMENTED) and not recorded, so a client cannot grow the label set. Children
for each method (and its OK code) are bound at construction; other codes are bound on
first use and cached. Every service here is unary-unary; other kinds pass through
untimed (the zone stream's operations are counted by the zone's own metrics).
"""

import asyncio
import time

import grpc
from prometheus_client import Counter, Histogram

# The zone RPCs take ~0.5-1 ms on loopback plus the modeled zone->lock hold (a few ms);
# flushes and drains run for tens of ms to seconds.
RPC_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


class RpcMetricsInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, registry, services, clock=time.perf_counter):
        """`services`: protobuf ServiceDescriptors whose methods are recorded."""
        self._clock = clock
        self._requests = Counter(
            "pcpsim_rpc_requests_total",
            "RPCs served, by method and status code.",
            ["method", "code"],
            registry=registry,
        )
        self._duration = Histogram(
            "pcpsim_rpc_duration_seconds",
            "Server-side time to serve an RPC.",
            ["method"],
            buckets=RPC_BUCKETS,
            registry=registry,
        )
        self._methods = {}  # "/pcpsim.v1.Service/Method" -> (label, duration child, {code name: counter child})
        for service in services:
            for m in service.methods:
                label = f"{service.name}/{m.name}"
                self._methods[f"/{service.full_name}/{m.name}"] = (
                    label,
                    self._duration.labels(label),
                    {"OK": self._requests.labels(label, "OK")},
                )

    def _record(self, entry, code: str, seconds: float) -> None:
        label, duration, by_code = entry
        child = by_code.get(code)
        if child is None:
            child = by_code[code] = self._requests.labels(label, code)
        child.inc()
        duration.observe(seconds)

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        entry = self._methods.get(handler_call_details.method)
        if handler is None or entry is None or handler.unary_unary is None:
            return handler
        behavior, clock, record = handler.unary_unary, self._clock, self._record

        async def timed(request, context):
            t0 = clock()
            code = "UNKNOWN"
            try:
                reply = await behavior(request, context)
                code = _code_name(context.code()) or "OK"
                return reply
            except asyncio.CancelledError:
                code = "CANCELLED"
                raise
            except grpc.aio.AbortError:
                code = _code_name(context.code()) or "UNKNOWN"
                raise
            finally:
                record(entry, code, clock() - t0)

        return grpc.unary_unary_rpc_method_handler(
            timed, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )


def _code_name(code) -> str | None:
    """context.code() is None until a handler sets it; grpc may hand back a StatusCode or its int value."""
    if code is None:
        return None
    if isinstance(code, grpc.StatusCode):
        return code.name
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status.name
    return "UNKNOWN"
