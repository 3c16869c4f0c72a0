"""The one place where domain errors and run-time faults meet the RPCs a process serves.

Servicers convert a message, call domain code and convert the result back; domain code
raises node.api.errors' exceptions and never touches the gRPC context. This grpc.aio
server interceptor does the rest for every method of the services it is given (never
the health service), so no servicer method can forget it:
- maps those exceptions to status codes (node.api.errors' table). A unary call ends with
  the code; on a request/reply stream only that message's reply carries `code` and
  `error`, and the stream stays open;
- applies IN faults (node.shared.faults) to each unary request as "<Method>" and to each
  message of a stream as "<Method>.<op>" (e.g. "ZoneStream.free"), the request's `cpu`
  being the peer; SetFaults is exempt (node.api.fault_points.EXEMPT);
- stamps every reply of a stream with the fields its process puts on all of them (`reply_fields`: the
  coordinator's epoch on ZoneStream's, node.epoch), the replies of errors included.

Streams (PcpControl, ZoneStream) follow node.shared.reply_stream's contract: each request
names its operation in a oneof `op`, and the servicer answers each with one reply, in
order. So a stream's faults and errors are applied at its two ends: the request iterator
the servicer reads (a delay, a failure or a drop, before the servicer sees the message)
and the reply path (a dropped reply). A domain error ends the servicer's generator; the
interceptor answers that message with the error and serves the rest of the stream with
a new generator over the same requests.
"""

import grpc
from google.protobuf.message_factory import GetMessageClass

from node.api.errors import DOMAIN_ERRORS, status_of
from node.api.fault_points import EXEMPT
from node.api.status import grpc_status
from node.shared.faults import ANY_PEER, Faults, lost


class ErrorsAndFaultsInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, faults: Faults, services, reply_fields: dict | None = None):
        """`services`: protobuf ServiceDescriptors whose methods are served through here; `reply_fields`:
        field -> value, set on every reply of a stream whose message has the field."""
        self.faults = faults
        self._replies = {}  # "/pcpsim.v1.Service/Method" -> its reply class (a stream's error replies)
        self._stamps = {}  # the same -> the reply_fields its reply class has
        for service in services:
            for m in service.methods:
                method = f"/{service.full_name}/{m.name}"
                self._replies[method] = GetMessageClass(m.output_type)
                self._stamps[method] = {
                    k: v for k, v in (reply_fields or {}).items() if k in m.output_type.fields_by_name
                }

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        reply_cls = self._replies.get(handler_call_details.method)
        if handler is None or reply_cls is None:
            return handler
        name = handler_call_details.method.rsplit("/", 1)[-1]
        faults = None if name in EXEMPT else self.faults
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _unary(handler.unary_unary, name, faults),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                _stream(handler.stream_stream, name, reply_cls, faults, self._stamps[handler_call_details.method]),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        # No unary-stream or stream-unary method exists; refuse rather than serve one unmapped.
        raise RuntimeError(f"no error and fault wrapper for the kind of handler {handler}")


def _unary(behavior, name: str, faults: Faults | None):
    async def serve(request, context):
        try:
            if faults is None:
                return await behavior(request, context)
            return await faults.inbound(name, getattr(request, "cpu", ANY_PEER), lambda: behavior(request, context))
        except DOMAIN_ERRORS as err:
            await context.abort(grpc_status(err), str(err))

    return serve


def _stream(behavior, name: str, reply_cls, faults: Faults | None, stamp: dict):
    async def serve(request_iterator, context):
        requests = _Requests(request_iterator, name, faults)
        while True:
            try:
                async for reply in behavior(requests, context):
                    if requests.lose_reply:
                        await lost()
                    for field, value in stamp.items():
                        setattr(reply, field, value)
                    yield reply
                return
            except DOMAIN_ERRORS as err:
                # Stamped too: until 2026-12-07 a refusal carried no epoch, so a node never knew it came
                # from a coordinator it had not registered with (EpochRule.unregistered), and kept the
                # pages of a free the zone it had registered with had applied (sweep seed 4181 under the
                # wall engine: a page held twice).
                yield reply_cls(code=status_of(err).name, error=str(err), **stamp)

    return serve


class _Requests:
    """A stream's requests as its servicer reads them, each admitted under the IN faults
    matching "<name>.<op>"; `lose_reply` says whether the reply to the last one is lost."""

    def __init__(self, request_iterator, name: str, faults: Faults | None):
        self._requests = request_iterator.__aiter__()
        self._name = name
        self._faults = faults
        self.lose_reply = False

    def __aiter__(self):
        return self

    async def __anext__(self):
        request = await self._requests.__anext__()
        self.lose_reply = False
        op = request.WhichOneof("op")
        if self._faults is not None and op is not None:
            # A failure raises here, in the servicer's loop: the message is answered with
            # UNAVAILABLE without being handled.
            self.lose_reply = await self._faults.admit(
                f"{self._name}.{op}", getattr(getattr(request, op), "cpu", ANY_PEER)
            )
        return request
