"""Domain errors and the table that maps them to status codes, named as gRPC's.

Domain code raises these exceptions and never touches the gRPC context, so it can be
unit-tested without a server; one server interceptor (node.shared.interceptors) turns
them into status codes for every method. The table names the codes without importing
grpc, so a rule module (docs/engine.md) may raise these and its import closure stays
free of grpc: the wall's drivers convert a `Status` to grpc.StatusCode (node.api.status),
and a stream's reply and the virtual engine carry its name.
"""

import enum

from node.mm.buddy import PageStateError


class Status(enum.Enum):
    """The status codes a domain error maps to; each name is a grpc.StatusCode's."""

    INVALID_ARGUMENT = enum.auto()
    FAILED_PRECONDITION = enum.auto()
    NOT_FOUND = enum.auto()
    UNAVAILABLE = enum.auto()
    DEADLINE_EXCEEDED = enum.auto()


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
    (InvalidArgument, Status.INVALID_ARGUMENT),
    (PageStateError, Status.FAILED_PRECONDITION),
    (FailedPrecondition, Status.FAILED_PRECONDITION),
    (NotFound, Status.NOT_FOUND),
    (Unavailable, Status.UNAVAILABLE),
    (DeadlineExceeded, Status.DEADLINE_EXCEEDED),
)


DOMAIN_ERRORS = tuple(exc for exc, _ in _CODES)


def status_of(err: Exception) -> Status:
    """The status code a domain error maps to."""
    return next(code for exc, code in _CODES if isinstance(err, exc))
