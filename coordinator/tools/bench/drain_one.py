"""Figure 2 of `pcpsim bench`: the coordinator's remote drain of one CPU against one stream round trip.

The cluster (one housekeeping CPU, tiny time scale) also serves figure 5 (coordinator.tools.bench.zone)."""

import asyncio
import os
import statistics
import threading
import time

from coordinator.tools.bench.figure import Figure, log
from coordinator.tools.bench.streams import TINY_TIME_SCALE, Stream, rtt_control, rtt_zone, tiny_cluster
from coordinator.tools.bench.zone import zone_throughput
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.shared import security


def _refill(node_stub, cpu: int, want: int, timeout: float = 5.0) -> int:
    """Let the (paused) housekeeping CPU run until its pcp holds `want` pages, then pause it."""
    node_stub.SetRunState(pb.RunStateRequest(cpu=cpu, paused=False), timeout=10.0)
    deadline = time.monotonic() + timeout
    try:
        while True:
            count = node_stub.GetPcp(pb.CpuRequest(cpu=cpu), timeout=5.0).count
            if count >= want or time.monotonic() > deadline:
                break
            time.sleep(0.002)
    finally:
        node_stub.SetRunState(pb.RunStateRequest(cpu=cpu, paused=True), timeout=10.0)
    return node_stub.GetPcp(pb.CpuRequest(cpu=cpu), timeout=5.0).count


class _AioControl:
    """A PcpControl stream of the drainer's kind (AioReplyStream, as coordinator.membership opens one
    per member), on an event loop of its own so this synchronous bench can time round trips on it."""

    def __init__(self, address: str, sec):
        from node.shared.reply_stream import AioReplyStream

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bench-aio", daemon=True)
        self._thread.start()

        async def open_stream():
            self._channel = security.aio_channel(address, sec)
            control = security.stream_opener(pb_grpc.NodeStub(self._channel).PcpControl, sec)
            return AioReplyStream(control, 10.0, "bench-aio-pcp-control")

        self._stream = self._run(open_stream())

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30.0)

    def rtt(self, cpu: int) -> float:
        """One round trip, timed on the loop: an unlock with token 0, refused but answered."""

        async def once():
            t0 = time.perf_counter_ns()
            reply = await self._stream.request(pb.PcpControlRequest(unlock=pb.PcpUnlockRequest(cpu=cpu, token=0)))
            return (time.perf_counter_ns() - t0) * 1e-9, reply.code

        dt, code = self._run(once())
        if code != "INVALID_ARGUMENT":
            raise RuntimeError(f"floor request answered {code!r}, expected INVALID_ARGUMENT")
        return dt

    def close(self) -> None:
        async def close():
            self._stream.close()
            await self._channel.close()

        self._run(close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)
        self._loop.close()


def _drain_one(cstub, cpu: int) -> tuple[float, int]:
    """The coordinator's own drain_pages_zone of `cpu` (DrainAllPages, remote strategy): its duration
    for that CPU, as coordinator.drain.drainer times it (lock and take, commit, zone free), and base pages moved."""
    r = cstub.DrainAllPages(
        pb.DrainAllRequest(strategy=pb.STRATEGY_REMOTE, force_all_cpus=True, trigger=pb.TRIGGER_DEMAND), timeout=30.0
    )
    mine = [c for c in r.cpus if c.cpu == cpu]
    if r.status != pb.DrainAllReply.DONE or len(mine) != 1 or not mine[0].ok:
        raise RuntimeError(f"remote drain of cpu {cpu}: {pb.DrainAllReply.Status.Name(r.status)} {list(r.cpus)}")
    return mine[0].duration_s, mine[0].pages


def bench_remote_drain_and_zone(quick: bool, run_dir: str) -> tuple[list[Figure], dict]:
    iters = 60 if quick else 150
    with tiny_cluster(["housekeeping"], os.path.join(run_dir, "drain-one")) as cluster:
        node = cluster.ready.nodes[0]
        batch = cluster.ready.batch
        with cluster.channel(node.address) as nch, cluster.channel(cluster.coordinator_address) as cch:
            nstub, cstub = pb_grpc.NodeStub(nch), pb_grpc.CoordinatorStub(cch)
            actl = _AioControl(node.address, cluster.security)
            ctl = Stream(nstub.PcpControl, "bench-pcp-control")
            zs = Stream(cstub.ZoneStream, "bench-zone")
            try:
                nstub.SetRunState(pb.RunStateRequest(cpu=0, paused=True), timeout=10.0)
                for _ in range(20):  # open and warm every stream, and the coordinator's to the node
                    actl.rtt(0)
                    rtt_control(ctl, 0)
                    rtt_zone(zs)
                _drain_one(cstub, 0)
                drains, floors, sync_floors, pages = [], [], [], []
                for _ in range(iters):
                    _refill(nstub, 0, batch)
                    floors.append(actl.rtt(0))  # interleaved: floor, drain, floor
                    dt, n = _drain_one(cstub, 0)
                    floors.append(actl.rtt(0))
                    sync_floors.append(rtt_control(ctl, 0))
                    if n:
                        drains.append(dt)
                        pages.append(n)
                if not drains:
                    raise RuntimeError("the housekeeping CPU never put pages on its pcp")
                log(f"remote drain: {len(drains)} drains, median {statistics.median(pages):.0f} pages")
                zone_fig, zone_detail = zone_throughput(
                    cluster.coordinator_address, cluster.security, node.incarnation, zs, quick
                )
            finally:
                actl.close()
                ctl.close()
                zs.close()
    floor = statistics.median(floors)
    figs = [
        Figure(
            "remote drain of one CPU vs stream RTT",
            statistics.median(drains),
            floor,
            "s",
            "<= 4",
            f"median of {len(drains)} drains of {statistics.median(pages):.0f} base pages each, timed by "
            f"the coordinator (lock and take, commit: 2 round trips on its PcpControl stream, then the "
            f"zone free); floor: one round trip on an AioReplyStream PcpControl stream, the drainer's "
            f"kind (a sync stream: {statistics.median(sync_floors) * 1e6:.0f} us); "
            f"time scale {TINY_TIME_SCALE:g}",
        ),
        zone_fig,
    ]
    detail = {
        "remote_drain": {"drains_s": drains, "pages": pages, "rtt_s": floors, "sync_rtt_s": sync_floors},
        "zone": zone_detail,
    }
    return figs, detail
