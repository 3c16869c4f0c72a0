"""How a pcpsim process learns it must stop: SIGTERM, SIGINT, or its launcher dying.

A launcher (`pcpsim cluster up`, `compare`, the tests) passes --parent-pid; if that
process disappears without stopping us (it was SIGKILLed), we stop too, so no orphan
process keeps a port bound.
"""

import asyncio
import os
import signal


def add_parent_pid_flag(parser) -> None:
    """`--parent-pid`, which launchers set so a process stops when they are gone."""
    parser.add_argument("--parent-pid", type=int, help="stop when this process is gone (set by launchers)")


class StopEvent(asyncio.Event):
    """An asyncio.Event that holds the task watching the parent: the loop holds tasks weakly."""

    watcher: asyncio.Task[None] | None = None


def stop_event(parent_pid: int | None = None, interval: float = 0.5) -> StopEvent:
    """An event set on SIGTERM/SIGINT or when `parent_pid` is no longer our parent."""
    stop = StopEvent()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if parent_pid:

        async def watch() -> None:
            while not stop.is_set():
                if os.getppid() != parent_pid:
                    stop.set()
                    return
                await asyncio.sleep(interval)

        stop.watcher = asyncio.create_task(watch())
    return stop
