"""What the wall nemesis and runner learn of a local cluster's processes from outside them."""

import signal
import time
from collections.abc import Callable

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
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def run_queue_wait_s(pid: int) -> float:
    """Seconds the main thread of process `pid` has spent runnable but not running: waiting in the host's
    run queue (the second field of /proc/PID/schedstat, in ns). 0.0 if it is gone or the kernel keeps no
    schedstat. The main thread is the one that imports, registers a node and runs each process's event
    loop; the threads' sum would count a wait several times over while they wait together."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


class HeldBack:
    """How long the host's run queue has held each process back since this first looked at it."""

    def __init__(self, read: Callable[[int], float] = run_queue_wait_s):
        self._read = read
        self._first: dict[int, float] = {}

    def since_first_look(self, pid: int) -> float:
        now = self._read(pid)
        return now - self._first.setdefault(pid, now)
