"""Domain errors and the table that maps them to gRPC status codes.

Domain code raises these exceptions and never touches the gRPC context, so it can be
unit-tested without a server; one server interceptor (node.shared.interceptors) turns
them into status codes for every method.
"""

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


class DeadlineExceeded(Exception):
    """The operation did not complete in its time bound; it was undone, so nothing changed."""


_CODES = (
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (PageStateError, grpc.StatusCode.FAILED_PRECONDITION),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
)


DOMAIN_ERRORS = tuple(exc for exc, _ in _CODES)


def status_of(err: Exception) -> grpc.StatusCode:
    """The status code a domain error maps to."""
    return next(code for exc, code in _CODES if isinstance(err, exc))
