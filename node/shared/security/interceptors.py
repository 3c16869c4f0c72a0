"""The interceptors that enforce and carry credentials: AuthInterceptor on every server (it
authenticates, authorizes against ACCESS and strictly decodes requests), and the client
interceptors that add this process's bearer token to every call it makes."""

from collections import namedtuple

import grpc
from google.protobuf.message import DecodeError
from prometheus_client import Counter

from node.shared.security.access import ACCESS, ALWAYS, HEALTH
from node.shared.security.settings import Security
from node.shared.security.tokens import identify


# ------------------------------------------------------------------ server side
class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates, authorizes and strictly decodes every call but health checks.

    Refusals: no or a malformed `authorization` header -> UNAUTHENTICATED (reason
    missing_token); an unknown secret -> UNAUTHENTICATED (bad_token); a method without a
    row in ACCESS -> PERMISSION_DENIED (unlisted); a role the row does not allow, or a
    request its predicate refuses -> PERMISSION_DENIED (role). Each is counted in
    pcpsim_rpc_refused_total{reason}. With auth off (no token file) only decoding applies.

    Decoding: requests reach the servicer decoded here, so bytes that are no valid message
    get INVALID_ARGUMENT (gRPC's own deserializer would answer INTERNAL)."""

    REASONS = ("missing_token", "bad_token", "unlisted", "role", "undecodable")

    def __init__(self, sec: Security, registry):
        self._accept = sec.accept
        self._keys = sec.keys
        refused = Counter(
            "pcpsim_rpc_refused_total",
            "RPCs refused before reaching the servicer, by reason.",
            ["reason"],
            registry=registry,
        )
        self._refused = {r: refused.labels(r) for r in self.REASONS}

    def role_of(self, metadata) -> tuple[str, int | None]:
        """The role whose secret the call presents, and the CPU it is bound to (None: any);
        raises _Refused if none."""
        header = [v for k, v in (metadata or ()) if k == "authorization"]
        if len(header) != 1 or not isinstance(header[0], str) or not header[0].startswith("Bearer "):
            raise _Refused(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing_token",
                "this cluster requires a bearer token (authorization: Bearer ...)",
            )
        role, cpu = identify(header[0][len("Bearer ") :], self._accept, self._keys)
        if role is None:
            raise _Refused(grpc.StatusCode.UNAUTHENTICATED, "bad_token", "the bearer token is not valid here")
        return role, cpu

    async def intercept_service(self, continuation, details):
        method = details.method
        if method.startswith(HEALTH):
            return await continuation(details)
        refusal, predicate, cpu = None, ALWAYS, None
        try:
            if self._accept or self._keys:
                role, cpu = self.role_of(details.invocation_metadata)
                rules = ACCESS.get(method)
                if rules is None:
                    raise _Refused(grpc.StatusCode.PERMISSION_DENIED, "unlisted", f"{method} is open to no role")
                if role not in rules:
                    raise _Refused(grpc.StatusCode.PERMISSION_DENIED, "role", f"role {role} may not call {method}")
                predicate = rules[role]
        except _Refused as err:
            refusal = err
        handler = await continuation(details)
        if handler is None:
            return None
        return self._wrap(handler, refusal, predicate, cpu)

    def _wrap(self, handler, refusal, predicate, cpu):
        deserialize = handler.request_deserializer
        refused = self._refused

        async def refuse(context, err):
            refused[err.reason].inc()
            await context.abort(err.code, err.detail)

        async def decode(raw, context):
            try:
                request = deserialize(raw) if deserialize else raw
            except DecodeError:
                await refuse(
                    context,
                    _Refused(grpc.StatusCode.INVALID_ARGUMENT, "undecodable", "the request is not a valid message"),
                )
            if predicate is not None and not predicate(request, cpu):
                await refuse(
                    context,
                    _Refused(
                        grpc.StatusCode.PERMISSION_DENIED,
                        "role",
                        "these credentials may not make this request"
                        + ("" if cpu is None else f" (they are cpu {cpu}'s)"),
                    ),
                )
            return request

        if handler.unary_unary:
            behavior = handler.unary_unary

            async def unary(raw, context):
                if refusal:
                    await refuse(context, refusal)
                return await behavior(await decode(raw, context), context)

            return grpc.unary_unary_rpc_method_handler(unary, response_serializer=handler.response_serializer)
        if handler.stream_stream:
            behavior = handler.stream_stream

            async def stream(raw_iterator, context):
                if refusal:
                    await refuse(context, refusal)

                async def requests():
                    async for raw in raw_iterator:
                        yield await decode(raw, context)

                async for reply in behavior(requests(), context):
                    yield reply

            return grpc.stream_stream_rpc_method_handler(stream, response_serializer=handler.response_serializer)
        # No unary-stream or stream-unary method exists; refuse rather than pass one unchecked.
        raise RuntimeError(f"no auth wrapper for the kind of handler {handler}")


class _Refused(Exception):
    def __init__(self, code, reason: str, detail: str):
        super().__init__(detail)
        self.code, self.reason, self.detail = code, reason, detail


# ------------------------------------------------------------------ client side
def _with_token(metadata, token: str | None, extra: tuple) -> list:
    return [*(metadata or ()), *extra, *((("authorization", f"Bearer {token}"),) if token else ())]


class _Details(
    namedtuple("_Details", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
    grpc.ClientCallDetails,
):
    pass


class SyncToken(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds the bearer token (if any) and `extra` headers to every call (both services have only
    these two kinds)."""

    def __init__(self, token: str | None, extra: tuple = ()):
        self._token = token
        self._extra = extra

    def _details(self, d):
        return _Details(
            d.method,
            d.timeout,
            _with_token(d.metadata, self._token, self._extra),
            d.credentials,
            getattr(d, "wait_for_ready", None),
            getattr(d, "compression", None),
        )

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)

    def __repr__(self):  # never show the secret
        return "<bearer token>"


def call_metadata(token: str | None, extra: tuple = ()) -> tuple:
    """The headers a call carries: `extra`, then the bearer token (if any)."""
    return tuple(_with_token(None, token, extra))


class AioUnaryToken(grpc.aio.UnaryUnaryClientInterceptor):
    """Adds the bearer token (if any) and `extra` headers to every unary call of an asyncio channel.
    Its streams carry them per call (channels.stream_opener): grpc.aio passes an intercepted
    stream's writes through a task of its own, which a call its peer has ended can no longer
    cancel, so the task stayed pending until collected and asyncio logged it (the test in
    tests/unit/test_reply_stream.py)."""

    def __init__(self, token: str | None, extra: tuple = ()):
        self._token = token
        self._extra = extra

    async def intercept_unary_unary(self, continuation, details, request):
        d = details
        metadata = grpc.aio.Metadata(*_with_token(d.metadata, self._token, self._extra))
        return await continuation(
            grpc.aio.ClientCallDetails(d.method, d.timeout, metadata, d.credentials, d.wait_for_ready), request
        )

    def __repr__(self):  # never show the secret
        return "<bearer token>"
