"""Figure 5 of `pcpsim bench`: the zone service's throughput from many client processes."""

import multiprocessing
import os
import statistics
import time

import grpc

from coordinator.tools.bench.figure import Figure
from coordinator.tools.bench.streams import rtt_zone
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.mm.constants import MIGRATE_MOVABLE
from node.shared import security

ZONE_CLIENTS = 8


def _zone_client(address: str, sec, incarnation: str, index: int, measure_s: float, ready, go, start_at, out) -> None:
    """One zone client process: Rmqueue + FreePages pairs (cpu 0, order 0) on its own ZoneStream,
    from the common start the parent sets once every client has warmed its stream."""
    from node.shared.reply_stream import ReplyStream

    with security.channel(address, sec) as ch:
        # Eight processes dial at once on a loaded machine: a stream opened before the channel is
        # connected fails at once (UNAVAILABLE, "tcp handshaker shutdown" in one CI run) instead of waiting.
        grpc.channel_ready_future(ch).result(timeout=60.0)
        zs = ReplyStream(pb_grpc.CoordinatorStub(ch).ZoneStream, 10.0, f"bench-zone-{index}")
        ops, seq, errors = 0, 0, 0

        def pair(count: bool) -> int:
            nonlocal seq, errors
            seq += 1
            r = zs.request(
                pb.ZoneRequest(
                    rmqueue=pb.RmqueueRequest(
                        cpu=0,
                        order=0,
                        migratetype=MIGRATE_MOVABLE,
                        count=1,
                        incarnation=incarnation,
                        transfer_id=f"bench-z{index}-{os.getpid()}-{seq}a",
                    )
                )
            )
            if r.code or not r.rmqueue.pfn:
                errors += 1
                return 0
            pfn = r.rmqueue.pfn[0]
            f = zs.request(
                pb.ZoneRequest(
                    free=pb.FreePagesRequest(
                        cpu=0,
                        pages=pb.PageList(pfn=[pfn], order=[0], migratetype=[MIGRATE_MOVABLE]),
                        incarnation=incarnation,
                        transfer_id=f"bench-z{index}-{os.getpid()}-{seq}b",
                    )
                )
            )
            errors += bool(f.code)
            return 2

        for _ in range(20):  # warm the stream
            pair(False)
        ready.put(index)
        go.wait(120.0)
        while time.monotonic() < start_at.value:
            time.sleep(0.001)
        end_at = start_at.value + measure_s
        while time.monotonic() < end_at:
            ops += pair(True)
        zs.close()
    out.put((index, ops, errors))


def zone_throughput(address: str, sec, incarnation: str, zs, quick: bool) -> tuple[Figure, dict]:
    measure_s = 5.0 if quick else 10.0
    floors = [rtt_zone(zs) for _ in range(300)]
    ctx = multiprocessing.get_context("spawn")
    out, ready, go, start_at = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Value("d", 0.0)
    procs = [
        ctx.Process(
            target=_zone_client, args=(address, sec, incarnation, i, measure_s, ready, go, start_at, out), daemon=True
        )
        for i in range(ZONE_CLIENTS)
    ]
    for p in procs:
        p.start()
    for _ in procs:  # spawned, imported and warm, however long that takes on a loaded machine
        ready.get(timeout=120.0)
    start_at.value = time.monotonic() + 0.1
    go.set()
    results = [out.get(timeout=measure_s + 60.0) for _ in procs]
    for p in procs:
        p.join(10.0)
    floors += [rtt_zone(zs) for _ in range(300)]
    rtt = statistics.median(floors)
    ops = sum(r[1] for r in results)
    errors = sum(r[2] for r in results)
    throughput = ops / measure_s
    fig = Figure(
        f"zone ops/s, {ZONE_CLIENTS} clients vs 1/RTT of one stream",
        throughput,
        1.0 / rtt,
        "ops/s",
        ">= 0.5",
        f"Rmqueue+FreePages pairs for {measure_s:g}s, {ZONE_CLIENTS} client processes on "
        f"{os.cpu_count()} cores; floor = 1/median RTT of a trivial ZoneStream request"
        + (f"; {errors} errors" if errors else ""),
    )
    return fig, {
        "ops": ops,
        "errors": errors,
        "measure_s": measure_s,
        "rtt_s": rtt,
        "per_client_ops": [r[1] for r in sorted(results)],
    }
