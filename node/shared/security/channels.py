"""Channels between pcpsim processes: this process's TLS credentials, the size limits and
its bearer token and other headers (Security.metadata) on every call."""

from collections.abc import Callable

import grpc

from node.shared.security.interceptors import AioUnaryToken, SyncToken, call_metadata
from node.shared.security.limits import channel_options
from node.shared.security.settings import Security
from node.shared.security.tls import channel_credentials


def channel(address: str, sec: Security, peer: bool = False) -> grpc.Channel:
    """A sync channel to `address` with this process's TLS settings and token: a caller's (a
    tool's), or with `peer` a process's long-lived channel to another (node.shared.transport)."""
    opts = channel_options(peer)
    creds = channel_credentials(sec.tls)
    ch = grpc.secure_channel(address, creds, opts) if creds else grpc.insecure_channel(address, opts)
    return grpc.intercept_channel(ch, SyncToken(sec.token, sec.metadata)) if sec.token or sec.metadata else ch


def aio_channel(address: str, sec: Security) -> grpc.aio.Channel:
    """An asyncio channel to `address` with this process's TLS settings and token: a peer's
    (node.shared.transport), as every asyncio channel here is one process's to another. Its unary
    calls carry the token; open its streams with `stream_opener`."""
    opts = channel_options(peer=True)
    creds = channel_credentials(sec.tls)
    interceptors: list[grpc.aio.ClientInterceptor] | None = (
        [AioUnaryToken(sec.token, sec.metadata)] if sec.token or sec.metadata else None
    )
    if creds:
        return grpc.aio.secure_channel(address, creds, opts, interceptors=interceptors)
    return grpc.aio.insecure_channel(address, opts, interceptors=interceptors)


def stream_opener(method: grpc.aio.StreamStreamMultiCallable, sec: Security) -> Callable[[], grpc.aio.StreamStreamCall]:
    """Opens a stream of `method` (a stub's, on an `aio_channel`) carrying `sec`'s token and headers,
    as node.shared.reply_stream.AioReplyStream opens its calls."""
    metadata = call_metadata(sec.token, sec.metadata) or None
    return lambda: method(metadata=metadata)
