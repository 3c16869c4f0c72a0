"""A gRPC error as a sync stub raises it, for unit tests of code that reads only its code and details."""

import grpc


class RpcRefusal(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details
