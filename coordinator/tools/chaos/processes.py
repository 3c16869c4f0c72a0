"""What the wall nemesis and runner learn of a local cluster's processes from outside them."""

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc

RPC_TIMEOUT_S = 2.0
STOP_WAIT_S = 1.0  # how long a SIGSTOP may take to stop its process before the nemesis goes on anyway
STOP_POLL_S = 0.001


def answers_as(cluster, member: pb.NodeInfo) -> bool:
    """Whether the process at a member's address is that member: its node answers with the member's
    incarnation. A killed process's member stays listed, up, until its heartbeats are late (longer if its
    coordinator was stopped meanwhile, which excuses lateness); no process answers at its address then,
    or a new process answers with its own incarnation."""
    try:
        with cluster.channel(member.address) as ch:
            snap = pb_grpc.NodeStub(ch).Snapshot(pb.CpuRequest(cpu=member.cpu), timeout=RPC_TIMEOUT_S)
    except grpc.RpcError:
        return False
    return snap.incarnation == member.incarnation


def sigstop(proc) -> None:
    """SIGSTOP `proc` and wait (at most STOP_WAIT_S) until /proc says it is stopped. The signal stops it
    only once its threads next run, which under load is milliseconds later; SIGCONT, by contrast, wakes
    them before kill(2) returns. A step right after the stop that asks whether the process is stopped
    must see it stopped: sweep seed 4364 under the wall engine (three runs at a time) sent a partition's
    heal to a node it had just SIGSTOPped, whose state still read running, and the call waited out its
    2 s timeout, failed, and left the node partitioned to the end of the run."""
    proc.send_signal(signal.SIGSTOP)
    deadline = time.monotonic() + STOP_WAIT_S
    while process_state(proc.pid) not in ("T", "") and time.monotonic() < deadline:
        time.sleep(STOP_POLL_S)


def process_state(pid: int) -> str:
    """The one-letter state of /proc/PID/stat ("T": stopped), or "" if it is gone."""
    return _state(f"/proc/{pid}/stat")


def _state(stat_path: str) -> str:
    """The one-letter state in a /proc stat file (a process's or a thread's), or "" if it is gone."""
    try:
        with open(stat_path) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


@dataclass(frozen=True)
class ThreadSched:
    """What the kernel's schedstat says of one thread: seconds on a CPU, seconds runnable but not running
    (its wait in the host's run queue, as of the last time it ran), and whether it is runnable now."""

    on_cpu_s: float
    run_delay_s: float
    runnable: bool


def thread_scheds(pid: int) -> dict[int, ThreadSched]:
    """Thread id -> ThreadSched of each thread of process `pid` (/proc/PID/task/TID/schedstat and stat).
    Empty if the process is gone or the kernel keeps no schedstat."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return {}
    out = {}
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                on_cpu, delay = f.read().split()[:2]
            sched = ThreadSched(int(on_cpu) / 1e9, int(delay) / 1e9, _state(f"/proc/{pid}/task/{tid}/stat") == "R")
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
        out[int(tid)] = sched
    return out


@dataclass
class _Thread:
    first_delay_s: float  # its run_delay at the first look (0 for a thread started since)
    on_cpu_s: float
    seen_at: float
    waited_s: float = 0.0  # runnable and not run between two looks, summed


class HeldBack:
    """How long the host's run queue has held each process back since this first looked at it: the
    longest wait of one of its threads. A thread's wait is its run_delay since the first look, which the
    kernel adds to only when the thread next runs; while it has not run since, the time between two looks
    that found it runnable and its CPU time unchanged. Not the main thread's alone: while a starved thread
    holds the GIL, the main thread sleeps waiting for it, out of the run queue; nor the threads' sum,
    which counts a wait several times over while they wait together."""

    def __init__(self, read: Callable[[int], dict[int, ThreadSched]] = thread_scheds, clock=time.monotonic):
        self._read = read
        self._clock = clock
        self._threads: dict[int, dict[int, _Thread]] = {}

    def since_first_look(self, pid: int) -> float:
        now, scheds = self._clock(), self._read(pid)
        first_look = pid not in self._threads
        threads = self._threads.setdefault(pid, {})
        longest = 0.0
        for tid, sched in scheds.items():
            t = threads.get(tid)
            if t is None:
                t = threads[tid] = _Thread(sched.run_delay_s if first_look else 0.0, sched.on_cpu_s, now)
            elif sched.runnable and sched.on_cpu_s == t.on_cpu_s:
                t.waited_s += now - t.seen_at
            t.on_cpu_s, t.seen_at = sched.on_cpu_s, now
            longest = max(longest, sched.run_delay_s - t.first_delay_s, t.waited_s)
        return longest
