"""What the wall nemesis and runner learn of a local cluster's processes from outside them."""

import grpc

from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc

RPC_TIMEOUT_S = 2.0


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


def process_state(pid: int) -> str:
    """The one-letter state of /proc/PID/stat ("T": stopped), or "" if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""
