"""A domain error's gRPC status code: the wall's half of node.api.errors' table.

node.api.errors names each code without importing grpc (rule modules raise its exceptions);
the server interceptor (node.shared.interceptors) ends a call with the grpc.StatusCode of
the same name.
"""

import grpc

from node.api.errors import status_of


def grpc_status(err: Exception) -> grpc.StatusCode:
    """The grpc.StatusCode a domain error maps to."""
    return grpc.StatusCode[status_of(err).name]
