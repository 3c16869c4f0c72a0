"""The wall driver of the drain rules: runs their effects (coordinator.drain.effects) on asyncio and
the members' gRPC streams, in the coordinator process. It does only the I/O and the waiting, as the
coroutines the rules were did it: the same messages, outbound faults applied before each is sent, the
same bounds, and the chaos trap's SIGSTOP of this process. Transport failures come back to a rule as
Failed carrying the one-line account the drain records have always shown."""

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import grpc

from coordinator.drain.control import MIN_ATTEMPT_S, Control
from coordinator.drain.effects import (
    Call,
    DeclareDead,
    Effect,
    Failed,
    Gather,
    GaveUp,
    Lock,
    Post,
    Program,
    Send,
    Sleep,
    StopHere,
    Unlock,
    ZoneLocked,
)
from node.shared.faults import Faults, InjectedRpcError
from node.shared.reply_stream import StreamBroken

R = TypeVar("R")
T = TypeVar("T")


class ZoneFrees(Protocol):
    """The coordinator's zone service (coordinator.zone_service.ZoneService) as a drain uses it:
    a CPU's drained pages freed under zone->lock, once per transfer id (stream DRAIN)."""

    async def locked(self, fn: Callable[..., R], *args: object) -> R: ...

    def free_pages(self, cpu: int, pages: list[Any], transfer_id: str, incarnation: str, stream: str) -> object: ...


def account(err: BaseException) -> str:
    """The one-line account of a transport failure: status and details of an RPC error, else the exception."""
    if isinstance(err, (grpc.aio.AioRpcError, InjectedRpcError)):
        return f"{err.code().name}: {err.details()}"
    return f"{type(err).__name__}: {err}"


class WallDriver:
    def __init__(self, control: Control | None, zone: ZoneFrees | None = None, faults: Faults | None = None) -> None:
        self.control = control  # its reaper takes a dead member's pages back (drains only)
        self.zone = zone
        self.faults = faults  # OUT faults, and the stop-after-grant trap
        self._posted: set[asyncio.Task[None]] = set()  # Posts on their way (the loop keeps weak references)

    async def run(self, program: Program[T]) -> T:
        """Run `program` to its end: each effect done here, its result sent back in, its failure thrown in.
        A cancellation is thrown in too, so the program's `finally` (letting go of pcpu_drain_mutex) runs
        as an `async with` would have; it then propagates."""
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                effect = program.throw(error) if error is not None else program.send(value)
            except StopIteration as done:
                result: T = done.value
                return result
            value, error = None, None
            try:
                value = await self._do(effect)
            except BaseException as err:  # a cancellation too: thrown into the program, which decides
                error = err

    async def _do(self, effect: Effect) -> Any:
        if isinstance(effect, Send):
            return await self._send(effect)
        if isinstance(effect, Post):
            task = asyncio.ensure_future(self._post(effect))
            self._posted.add(task)
            task.add_done_callback(self._posted.discard)
            return None
        if isinstance(effect, Call):
            return await self._call(effect)
        if isinstance(effect, Sleep):
            await asyncio.sleep(effect.seconds)
            return None
        if isinstance(effect, Gather):
            return await asyncio.gather(*(self.run(p) for p in effect.programs), return_exceptions=True)
        if isinstance(effect, StopHere):
            self._stop_here_if_trapped()
            return None
        if isinstance(effect, ZoneLocked):
            assert self.zone is not None, "a driver of rules that use the zone is given it"
            return await self.zone.locked(effect.fn, self.zone, *effect.args)
        if isinstance(effect, DeclareDead):
            assert self.control is not None and self.control.reaper is not None, (
                "the coordinator sets the reaper before it serves drains"
            )
            return await self.control.reaper.kill(effect.member)
        if isinstance(effect, Lock):
            mutex: asyncio.Lock = effect.mutex  # type: ignore[assignment]
            if not effect.wait and mutex.locked():
                return False
            await mutex.acquire()
            return True
        if isinstance(effect, Unlock):
            effect.mutex.release()  # type: ignore[attr-defined]
            return None
        raise TypeError(f"not an effect: {effect!r}")

    async def _outbound(self, method: str, cpu: int, timeout: float) -> None:
        if self.faults is not None:
            try:
                await self.faults.outbound(method, cpu, timeout)
            except InjectedRpcError as err:
                raise Failed(account(err)) from None

    async def _send(self, send: Send) -> Any:
        member = send.member
        await self._outbound(f"PcpControl.{send.message.WhichOneof('op')}", member.cpu, send.timeout)
        stream = member.control
        assert stream is not None, "registration gives every member its control stream"
        call = asyncio.ensure_future(stream.request(send.message, send.timeout))
        try:
            while True:
                done, _ = await asyncio.wait({call}, timeout=send.poll_s if send.give_up else None)
                if done:
                    return call.result()
                if send.give_up is not None and send.give_up():
                    raise GaveUp
        except StreamBroken as err:
            raise Failed(account(err)) from None
        finally:
            call.cancel()

    async def _post(self, post: Post) -> None:
        """Send a Post on the member's stream, its answer read (the stream carries one request at a time)
        within MIN_ATTEMPT_S and dropped; a lost one is the rule's to accept."""
        with contextlib.suppress(Failed):
            await self._send(Send(post.member, post.message, MIN_ATTEMPT_S))

    async def _call(self, call: Call) -> Any:
        if call.lost_after is not None:
            await self._outbound(call.method, call.member.cpu, call.lost_after)
        try:
            return await getattr(call.member.stub, call.method)(call.request, timeout=call.timeout)
        except grpc.aio.AioRpcError as err:
            raise Failed(account(err)) from None

    def _stop_here_if_trapped(self) -> None:
        """The chaos trap: this process SIGSTOPs itself mid-drain (holding a node's pcp lock,
        or with work queued and not yet flushed); the nemesis SIGCONTs it later."""
        if self.faults is not None and self.faults.stop_mid_drain:
            self.faults.stop_mid_drain = False
            os.kill(os.getpid(), signal.SIGSTOP)
