"""Stream round trips and tiny-time-scale clusters: the floors figures 2, 3 and 5 are measured against."""

import time

from coordinator.tools.cluster import ClusterConfig, LocalCluster
from node.api.v1 import pcpsim_pb2 as pb

TINY_TIME_SCALE = 1e-6  # modeled sleeps ~0: what remains is simulator overhead


class Stream:
    """One request/reply at a time on an open bidirectional stream (a sync ReplyStream)."""

    def __init__(self, open_call, name: str, timeout: float = 10.0):
        from node.shared.reply_stream import ReplyStream

        self.stream = ReplyStream(open_call, timeout, name)

    def request(self, msg):
        return self.stream.request(msg)

    def close(self):
        self.stream.close()


def rtt_control(ctl, cpu: int) -> float:
    """One round trip on the PcpControl stream: an unlock with token 0, refused but answered."""
    t0 = time.perf_counter_ns()
    reply = ctl.request(pb.PcpControlRequest(unlock=pb.PcpUnlockRequest(cpu=cpu, token=0)))
    dt = (time.perf_counter_ns() - t0) * 1e-9
    if reply.code != "INVALID_ARGUMENT":
        raise RuntimeError(f"floor request answered {reply.code!r}, expected INVALID_ARGUMENT")
    return dt


def rtt_zone(zs) -> float:
    """One round trip on a ZoneStream: a request naming no operation, refused before zone->lock."""
    t0 = time.perf_counter_ns()
    reply = zs.request(pb.ZoneRequest())
    dt = (time.perf_counter_ns() - t0) * 1e-9
    if reply.code != "INVALID_ARGUMENT":
        raise RuntimeError(f"floor request answered {reply.code!r}, expected INVALID_ARGUMENT")
    return dt


def tiny_cluster(roles, run_dir: str, **kw) -> LocalCluster:
    return LocalCluster(
        ClusterConfig(
            roles=list(roles),
            coordinator_args=["--time-scale", str(TINY_TIME_SCALE), *kw.get("coordinator_args", [])],
            node_args=kw.get("node_args", []),
        ),
        run_dir,
    )
