"""Domain errors and the one place that maps them to gRPC status codes.

Servicer methods are wrapped with `rpc`; domain code raises these exceptions and
never touches the gRPC context, so it can be unit-tested without a server.
"""

import functools

import grpc

from node.mm.zone import PageStateError


class InvalidArgument(ValueError):
    """The request is malformed: nothing was changed."""


class FailedPrecondition(Exception):
    """The request is well formed but not valid in the current state: nothing was changed."""


class NotFound(Exception):
    """The request names something that does not exist."""


class Unavailable(Exception):
    """A peer needed to serve the request did not answer."""


_CODES = (
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (PageStateError, grpc.StatusCode.FAILED_PRECONDITION),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
)


DOMAIN_ERRORS = tuple(exc for exc, _ in _CODES)


def status_of(err: Exception) -> grpc.StatusCode:
    """The status code a domain error maps to."""
    return next(code for exc, code in _CODES if isinstance(err, exc))


def rpc(method):
    """Run an async servicer method, turning domain errors into their status codes."""

    @functools.wraps(method)
    async def wrapper(self, request, context):
        try:
            return await method(self, request, context)
        except DOMAIN_ERRORS as err:
            await context.abort(status_of(err), str(err))

    return wrapper


async def serve_stream(request_iterator, reply_cls, handlers: dict, name: str, faults=None):
    """Serve a request/reply stream whose requests name their operation in a oneof `op`.

    `handlers` maps an op to (reply field, async handler of the op's message). A domain
    error becomes a reply with `code` and `error` set, and the stream stays open.
    `faults` (node.shared.faults.Faults) applies IN faults to each message as "<name>.<op>"."""
    async for request in request_iterator:
        op = request.WhichOneof("op")
        try:
            if op not in handlers:
                raise InvalidArgument("request names no operation")
            field, handler = handlers[op]
            message = getattr(request, op)
            if faults is None:
                result = await handler(message)
            else:
                result = await faults.inbound(f"{name}.{op}", getattr(message, "cpu", -1),
                                              lambda: handler(message))
            yield reply_cls(**{field: result})
        except DOMAIN_ERRORS as err:
            yield reply_cls(code=status_of(err).name, error=str(err))
