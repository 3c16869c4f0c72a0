"""Request/reply over one long-lived bidirectional gRPC stream.

A message on an open stream costs a fraction of a unary call here (docs/design.md, "Measured costs":
~0.15 ms against ~0.6 ms). Two peers talk often enough to keep one open: a node's CPU
thread and the zone (every refill and flush), and the coordinator and each node it
drains remotely (lock, then unlock, while the pcp lock is held). One request is
outstanding at a time and its reply is awaited with a timeout. A stream that breaks
or times out is closed, so a late reply can never be taken for the next request's,
and the next request opens a new one; callers retry with the same idempotency key
where a retry is safe.

ReplyStream serves a blocking caller thread (a reader thread feeds a queue, so the
wait can time out); AioReplyStream serves asyncio callers; `serve_ops` is the server's
side. Each request names its operation in a oneof `op`; its reply sets the operation's
field, or `code` and `error` when the operation failed (node.shared.interceptors writes
those, and applies faults to each message).
"""

import asyncio
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from node.api.errors import InvalidArgument

_CLOSE = object()


class StreamBroken(Exception):
    """The stream failed or timed out before the reply came: the request may or may not
    have been applied (retry it with the same key)."""

    def __init__(self, code: grpc.StatusCode, detail: str):
        super().__init__(f"{code.name}: {detail}")
        self._code = code

    def code(self) -> grpc.StatusCode:  # as grpc.RpcError spells it
        return self._code


@dataclass
class _OpenStream:
    call: grpc.Call  # cancel() ends it
    requests: queue.Queue[object]  # what the call sends, until _CLOSE
    replies: queue.Queue[object]  # what the reader thread received, or the StreamBroken that ended it


class ReplyStream:
    def __init__(self, open_call, timeout: float, name: str):
        """open_call(request_iterator) starts the RPC and returns its reply iterator."""
        self._open_call = open_call
        self.timeout = timeout
        self.name = name
        self._stream: _OpenStream | None = None

    def request(self, message):
        stream = self._stream or self._open()
        stream.requests.put(message)
        try:
            reply = stream.replies.get(timeout=self.timeout)
        except queue.Empty:
            self.close()
            raise StreamBroken(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"no reply on {self.name} within {self.timeout}s"
            ) from None
        if isinstance(reply, StreamBroken):
            self.close()
            raise reply
        return reply

    def close(self) -> None:
        if self._stream is not None:
            self._stream.requests.put(_CLOSE)
            self._stream.call.cancel()
            self._stream = None

    def _open(self) -> _OpenStream:
        requests: queue.Queue[object] = queue.Queue()
        replies: queue.Queue[object] = queue.Queue()
        call = self._open_call(iter(requests.get, _CLOSE))

        def read() -> None:
            try:
                for reply in call:
                    replies.put(reply)
                replies.put(StreamBroken(grpc.StatusCode.UNAVAILABLE, f"{self.name} closed by the peer"))
            except grpc.RpcError as err:
                replies.put(StreamBroken(err.code(), err.details() or ""))

        threading.Thread(target=read, name=f"{self.name}-reader", daemon=True).start()
        self._stream = _OpenStream(call, requests, replies)
        return self._stream


class AioReplyStream:
    def __init__(self, open_call, timeout: float, name: str):
        """open_call() starts the RPC and returns a grpc.aio StreamStreamCall."""
        self._open_call = open_call
        self.timeout = timeout
        self.name = name
        self._call: grpc.aio.StreamStreamCall | None = None
        self._lock = asyncio.Lock()

    async def request(self, message, timeout: float | None = None):
        async with self._lock:
            if self._call is None:
                self._call = self._open_call()
            call = self._call
            try:
                await call.write(message)
                reply = await asyncio.wait_for(call.read(), timeout or self.timeout)
            except TimeoutError:
                self.close()
                raise StreamBroken(
                    grpc.StatusCode.DEADLINE_EXCEEDED, f"no reply on {self.name} within {timeout or self.timeout}s"
                ) from None
            except grpc.aio.AioRpcError as err:
                self.close()
                raise StreamBroken(err.code(), err.details() or "") from None
            except asyncio.InvalidStateError:
                # grpc.aio refuses a write on a call that has already ended (the peer went away
                # between two requests): the same broken stream as an error status, to be opened anew.
                self.close()
                raise StreamBroken(grpc.StatusCode.UNAVAILABLE, f"{self.name} had already ended") from None
            except asyncio.CancelledError:
                self.close()
                raise
            if reply is grpc.aio.EOF:
                self.close()
                raise StreamBroken(grpc.StatusCode.UNAVAILABLE, f"{self.name} closed by the peer")
            return reply

    def close(self) -> None:
        if self._call is not None:
            self._call.cancel()
            self._call = None


async def until_stopping(requests, stopping: asyncio.Event, busy: Callable[[], bool], hold_s: float):
    """A served stream's requests, until `stopping` is set while none is awaited and `busy()` is false:
    the server is shutting down, and the stream ends between two requests (a request already read
    is answered first). A long-lived stream never ends on its own, so without this the server's
    `stop(grace)` waits out its whole grace for it (0.5 s at every node's exit after a remote drain).
    `busy()` true (a drainer holds a grant on this node) keeps the stream open for the unlock or
    commit that ends the grant, `hold_s` at most past the stop: less than the server's grace, so the
    stream ends here and the server's stop cancels nothing. Until 2026-12-07 it was held for the whole
    grace and then cancelled; a node's exit that closed its event loop with that cancellation pending
    made grpc.aio log the handler's CancelledError at ERROR (tests/unit/test_reply_stream.py). The peer
    sees the stream closed (node.shared.reply_stream: UNAVAILABLE, sent again on a new one), as after
    the grace's cancel."""
    loop = asyncio.get_running_loop()
    pending = requests.__aiter__()
    stop = asyncio.ensure_future(stopping.wait())
    read: asyncio.Future | None = None
    stopped_at: float | None = None
    try:
        while True:
            read = asyncio.ensure_future(pending.__anext__())
            while not read.done():
                if not stop.done():
                    await asyncio.wait({read, stop}, return_when=asyncio.FIRST_COMPLETED)
                    continue
                stopped_at = stopped_at if stopped_at is not None else loop.time()
                if not busy() or loop.time() - stopped_at >= hold_s:
                    read.cancel()
                    return
                await asyncio.wait({read}, timeout=0.05)  # a grant held: look again soon
            try:
                request = read.result()
            except StopAsyncIteration:
                return
            yield request
    finally:
        stop.cancel()
        # Closed while a read was out (the peer cancelled the stream): the read ends with the stream, and
        # its StopAsyncIteration is no error. Left alone, asyncio logged "Task exception was never
        # retrieved" for it in the node's log, at ERROR, after every coordinator restart (wall sweeps,
        # 2026-12-07).
        if read is not None:
            read.cancel()
            read.add_done_callback(_retrieved)


def _retrieved(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()


async def serve_ops(request_iterator, reply_cls, handlers: dict):
    """Answer each request of a stream in order: `handlers` maps an op to (reply field,
    async handler of the op's message)."""
    async for request in request_iterator:
        op = request.WhichOneof("op")
        if op not in handlers:
            raise InvalidArgument("request names no operation")
        field, handler = handlers[op]
        yield reply_cls(**{field: await handler(getattr(request, op))})
