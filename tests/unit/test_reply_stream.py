"""AioReplyStream against a real grpc.aio server on loopback: a stream the peer has ended is
reported as StreamBroken (the drainer's commit retries on that) and opened anew; and the server's
side of a stopping node (until_stopping)."""

import asyncio
import contextlib
import gc

import grpc
import pytest

from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.shared import security
from node.shared.reply_stream import AioReplyStream, StreamBroken, until_stopping

MESSAGE = pb.PcpControlRequest(unlock=pb.PcpUnlockRequest(cpu=0, token=1, commit=True))


@contextlib.asynccontextmanager
async def served(servicer):
    """`servicer` on a grpc.aio server on a free loopback port: (the server, a stub on a channel to it)."""
    server = grpc.aio.server()
    pb_grpc.add_NodeServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield server, pb_grpc.NodeStub(channel)
    finally:
        await channel.close()
        await server.stop(None)


class AnswersOnceThenEnds(pb_grpc.NodeServicer):
    """Each PcpControl call answers its first request, then ends the call (status OK)."""

    def __init__(self):
        self.calls = 0

    async def PcpControl(self, request_iterator, context):
        self.calls += 1
        async for _ in request_iterator:
            yield pb.PcpControlReply()
            return


@pytest.mark.asyncio
async def test_a_write_on_a_call_the_peer_ended_is_a_broken_stream_and_the_next_request_reopens():
    servicer = AnswersOnceThenEnds()
    async with served(servicer) as (_, stub):
        opened: list = []

        def open_call():
            opened.append(stub.PcpControl())
            return opened[-1]

        stream = AioReplyStream(open_call, 5.0, "test-control")
        await stream.request(MESSAGE)
        deadline = asyncio.get_running_loop().time() + 5.0
        while not opened[0].done():  # until the client has seen the call end
            assert asyncio.get_running_loop().time() < deadline, "the server never ended the call"
            await asyncio.sleep(0.01)
        with pytest.raises(StreamBroken) as info:
            await stream.request(MESSAGE)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        await stream.request(MESSAGE)  # opened anew
        assert servicer.calls == len(opened) == 2


class ServesUntilStopping(pb_grpc.NodeServicer):
    """PcpControl as node.server serves it at a stop: each request answered, the stream ended at the
    first idle moment after `stopping` is set while `busy` is false."""

    def __init__(self, hold_s: float = 30.0):
        self.stopping = asyncio.Event()
        self.busy = False
        self.answered = 0
        self.hold_s = hold_s
        self.ended = ""  # how the last call's handler ended: "returned" or "cancelled"

    async def PcpControl(self, request_iterator, context):
        try:
            async for _ in until_stopping(request_iterator, self.stopping, lambda: self.busy, self.hold_s):
                self.answered += 1
                yield pb.PcpControlReply()
        except asyncio.CancelledError:
            self.ended = "cancelled"
            raise
        self.ended = "returned"


@pytest.mark.asyncio
async def test_a_stopping_server_keeps_its_streams_while_a_grant_is_held_then_ends_them_between_requests():
    """A server's stop(grace) waits out the grace for a long-lived stream unless the stream ends. While the
    node holds a grant (`busy`), a stopping server still answers on its streams (the unlock or commit that
    ends the grant); once it holds none, every stream ends at its idle moment, with status OK, and the
    stop returns well inside its grace."""
    servicer = ServesUntilStopping()
    loop = asyncio.get_running_loop()
    async with served(servicer) as (server, stub):
        calls = [stub.PcpControl(), stub.PcpControl()]
        for call in calls:
            await call.write(MESSAGE)
            assert await asyncio.wait_for(call.read(), 5.0) == pb.PcpControlReply()
        servicer.busy = True  # a drainer holds a grant: its unlock is still to come
        servicer.stopping.set()
        for call in calls:  # stopping, but busy: both streams still answer
            await call.write(MESSAGE)
            assert await asyncio.wait_for(call.read(), 5.0) == pb.PcpControlReply()
        servicer.busy = False  # the grant ended
        for call in calls:
            assert await asyncio.wait_for(call.read(), 5.0) is grpc.aio.EOF  # ended by the server, not cancelled
            assert await call.code() == grpc.StatusCode.OK
        assert servicer.answered == 4
        started = loop.time()
        await server.stop(30.0)  # nothing left in flight: returns without waiting out the grace
        assert loop.time() - started < 10.0


@pytest.mark.asyncio
async def test_a_stream_that_holds_a_grant_at_the_stop_ends_after_its_hold_not_cancelled_by_the_grace():
    """A node stopping while a drainer holds a grant keeps the drainer's stream open for the unlock, at most
    its hold past the stop, which is shorter than the server's grace: the handler returns (status OK) and
    the server's stop returns without cancelling it. Until 2026-12-07 the stream was held for the whole
    grace and then cancelled, and the handler was still pending when the stop returned: a node's exit that
    then closed its event loop made grpc.aio log the handler's CancelledError at ERROR ("Exception not
    handled by _handle_exceptions in servicer method [/pcpsim.v1.Node/PcpControl]"). Since then a built
    server's stop also waits for its handlers (tests/unit/test_in_flight.py), which closes every way to
    that line, this one included."""
    servicer = ServesUntilStopping(hold_s=0.2)
    loop = asyncio.get_running_loop()
    async with served(servicer) as (server, stub):
        call = stub.PcpControl()
        await call.write(MESSAGE)
        assert await asyncio.wait_for(call.read(), 5.0) == pb.PcpControlReply()
        servicer.busy = True  # and it stays so: the drainer never sends its unlock
        servicer.stopping.set()
        started = loop.time()
        await server.stop(30.0)
        assert loop.time() - started < 10.0  # the stream ended by itself, long before the grace
        assert servicer.ended == "returned"
        assert await asyncio.wait_for(call.read(), 5.0) is grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK


@pytest.mark.asyncio
async def test_a_stream_closed_while_a_read_is_out_leaves_no_task_exception_unretrieved():
    """until_stopping closed while it waits for the next request (the peer cancelled the stream), the
    requests then ending: the read it had out is cancelled and nothing is logged. Until 2026-12-07
    asyncio logged "Task exception was never retrieved" (StopAsyncIteration) in the node's log, at ERROR,
    after every coordinator restart of a chaos run."""
    ended = asyncio.Event()

    async def requests():
        yield MESSAGE
        await ended.wait()  # the stream's end, which comes after the servicer stopped reading

    loop = asyncio.get_running_loop()
    unretrieved: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: unretrieved.append(context))
    try:
        stream = until_stopping(requests(), asyncio.Event(), lambda: False, 30.0)
        assert await stream.__anext__() == MESSAGE
        nxt = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0.01)  # the read of the second request is out
        nxt.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await nxt
        await stream.aclose()
        ended.set()
        await asyncio.sleep(0.01)
        gc.collect()  # asyncio logs an unretrieved exception when the task is collected
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert unretrieved == []


class RecordsMetadataThenEnds(AnswersOnceThenEnds):
    """AnswersOnceThenEnds, keeping each call's invocation metadata."""

    def __init__(self):
        super().__init__()
        self.metadata: list[dict] = []

    async def PcpControl(self, request_iterator, context):
        self.metadata.append(dict(context.invocation_metadata()))
        async for reply in super().PcpControl(request_iterator, context):
            yield reply


@pytest.mark.asyncio
async def test_a_stream_with_a_token_that_its_peer_ended_carries_the_token_and_leaves_no_task_behind():
    """The coordinator's PcpControl stream to a node, as coordinator.membership opens it (a channel and
    a stream with its token and epoch): the node sees both headers, and once the node has ended the
    stream and the coordinator has dropped it, asyncio reports nothing. Until 2026-12-07 the token was
    put on by a grpc.aio stream interceptor, whose call writes through a task of its own; a call the peer
    had ended could no longer be cancelled, so that task stayed pending until collected, and every node
    killed in a remote, qpw or rcu-swap chaos run left "Task was destroyed but it is pending!" and
    "aclose(): asynchronous generator is already running" in the coordinator's log, at ERROR."""
    servicer = RecordsMetadataThenEnds()
    server = grpc.aio.server()
    pb_grpc.add_NodeServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    sec = security.Security(token="cpu0.secret", metadata=(("pcpsim-coordinator-epoch", "3"),))
    channel = security.aio_channel(f"127.0.0.1:{port}", sec)
    loop = asyncio.get_running_loop()
    reported: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        stream = AioReplyStream(security.stream_opener(pb_grpc.NodeStub(channel).PcpControl, sec), 5.0, "test")
        await stream.request(MESSAGE)
        with pytest.raises(StreamBroken):  # ended by the node after its first answer
            for _ in range(100):
                await stream.request(MESSAGE)
                await asyncio.sleep(0.01)
        stream.close()
        del stream
        for _ in range(3):
            gc.collect()  # asyncio reports a pending task when it is collected
            await asyncio.sleep(0.01)
    finally:
        loop.set_exception_handler(None)
        await channel.close()
        await server.stop(None)
    assert servicer.metadata[0]["authorization"] == "Bearer cpu0.secret"
    assert servicer.metadata[0]["pcpsim-coordinator-epoch"] == "3"
    assert [c["message"] for c in reported] == []
