"""AioReplyStream against a real grpc.aio server on loopback: a stream the peer has ended is
reported as StreamBroken (the drainer's commit retries on that) and opened anew."""

import asyncio

import grpc
import pytest

from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.shared.reply_stream import AioReplyStream, StreamBroken


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
    server = grpc.aio.server()
    pb_grpc.add_NodeServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub, opened = pb_grpc.NodeStub(channel), []

        def open_call():
            opened.append(stub.PcpControl())
            return opened[-1]

        stream = AioReplyStream(open_call, 5.0, "test-control")
        message = pb.PcpControlRequest(unlock=pb.PcpUnlockRequest(cpu=0, token=1, commit=True))
        await stream.request(message)
        deadline = asyncio.get_running_loop().time() + 5.0
        while not opened[0].done():  # until the client has seen the call end
            assert asyncio.get_running_loop().time() < deadline, "the server never ended the call"
            await asyncio.sleep(0.01)
        with pytest.raises(StreamBroken) as info:
            await stream.request(message)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        await stream.request(message)  # opened anew
        assert servicer.calls == len(opened) == 2
    finally:
        await channel.close()
        await server.stop(None)
