"""node.api.errors names each domain error's status without grpc; node.api.status gives the wall's code."""

import grpc
import pytest

from node.api import errors
from node.api.status import grpc_status
from node.mm.buddy import PageStateError


@pytest.mark.parametrize(
    "err, code",
    [
        (errors.InvalidArgument("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (PageStateError("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (errors.FailedPrecondition("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (errors.NotFound("x"), grpc.StatusCode.NOT_FOUND),
        (errors.Unavailable("x"), grpc.StatusCode.UNAVAILABLE),
        (errors.DeadlineExceeded("x"), grpc.StatusCode.DEADLINE_EXCEEDED),
    ],
)
def test_each_domain_error_ends_a_call_with_the_grpc_code_of_its_status_name(err, code):
    """The stream replies carry status_of(err).name and unary calls end with grpc_status(err): the same code."""
    assert isinstance(err, errors.DOMAIN_ERRORS)
    assert grpc_status(err) is code and errors.status_of(err).name == code.name


def test_every_status_names_a_grpc_code():
    """A Status added without a grpc.StatusCode of its name fails here, not at a server's first error."""
    assert all(status.name in grpc.StatusCode.__members__ for status in errors.Status)
