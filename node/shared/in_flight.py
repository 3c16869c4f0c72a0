"""The RPC handlers a process's server is running, so that stopping the server can wait for them.

grpc.aio's `Server.stop(grace)` returns once the gRPC core holds no live call, and a handler's task may
still be pending then: one still sending its stream's closing status (seen in the wall sweeps' nodes,
docs/sweep.md), or one whose call was still open when the grace ended, which the core cancelled and whose
task has only been asked to cancel. A process that then returns from `asyncio.run` has the loop's
shutdown cancel that task and the grpc.aio task awaiting it, and grpc.aio logs the CancelledError at
ERROR, "Exception not handled by _handle_exceptions in servicer method [...]". Waiting here, after the
stop, for every handler the server started makes that line impossible whatever the handler was doing
(tests/unit/test_in_flight.py).

`InFlight` is a server interceptor: grpc.aio looks a call's handler up, interceptors included, in the
task that then runs the handler, so the task it sees is the handler's.
"""

import asyncio

import grpc


class InFlight(grpc.aio.ServerInterceptor):
    def __init__(self):
        self._tasks: dict[asyncio.Task, str] = {}  # the handler's task -> its method

    async def intercept_service(self, continuation, handler_call_details):
        task = asyncio.current_task()
        if task is not None:
            self._tasks[task] = handler_call_details.method
            task.add_done_callback(self._ended)
        return await continuation(handler_call_details)

    def _ended(self, task: asyncio.Task) -> None:
        self._tasks.pop(task, None)

    def methods(self) -> list[str]:
        """The methods of the handlers running now, sorted."""
        return sorted(self._tasks.values())

    async def wait_ended(self, timeout: float) -> list[str]:
        """Wait until every handler has ended, `timeout` seconds at most; the methods of those still
        running then. grpc.aio's task awaiting a handler is woken by the handler's end, no later than
        this wait is; one more pass of the loop lets it finish before this returns."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        await asyncio.sleep(0)
        return self.methods()
