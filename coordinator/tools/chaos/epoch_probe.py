"""What the wall nemesis asks about coordinator epochs from outside the cluster's processes: the epoch
in the state directory, and a node's answer to a request carrying an older coordinator's epoch."""

import dataclasses

import grpc

from coordinator.store import File
from node.api.epoch import epoch_metadata
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.shared import security


def stored_epoch(cluster) -> int:
    """The epoch of the newest coordinator started on the cluster's state directory."""
    return File(cluster.state_dir).read().epoch


def stale_probe(cluster, cpu: int, address: str, epoch: int, timeout: float) -> str:
    """QueueWork (a drain of the CPU's own lists: harmless if accepted) with `epoch`'s header:
    the node's answer ("ok", or the refusal's code and message)."""
    sec = dataclasses.replace(cluster.security, metadata=epoch_metadata(epoch))
    try:
        with security.channel(address, sec) as ch:
            pb_grpc.NodeStub(ch).QueueWork(
                pb.QueueWorkRequest(cpu=cpu, kind=pb.WORK_DRAIN_LOCAL_PAGES), timeout=timeout
            )
    except grpc.RpcError as err:
        return f"{err.code().name}: {err.details()}"
    return "ok"
