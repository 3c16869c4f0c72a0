"""`python -m node`: one simulated CPU as a process.

Starts the gRPC server (the interconnect) on an asyncio loop, registers with the
coordinator (which answers with the pcp's high and batch), starts the CPU thread and
sends heartbeats carrying the pcp count. SIGTERM or SIGINT stops it cleanly.
"""

import argparse
import asyncio
import sys
import time

import grpc

from node import exposition
from node.api.errors import Unavailable
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.lifecycle import stop_event
from node.rpc_metrics import RpcMetricsInterceptor
from node.runtime import ROLES, NodeRuntime, TaskConfig
from node.server import NodeServicer
from node.timebase import CostModel
from node.zone_client import ZoneClient


def positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m node", description="One simulated CPU of a pcpsim cluster.")
    p.add_argument("--cpu", type=int, required=True, help="this CPU's number")
    p.add_argument("--coordinator", required=True, help="coordinator address host:port")
    p.add_argument("--listen", default="127.0.0.1:0", help="gRPC listen address (default %(default)s)")
    p.add_argument("--metrics-listen", type=exposition.listen_address, default="127.0.0.1:0",
                   help="/metrics HTTP address, or 'off' (default 127.0.0.1:0)")
    p.add_argument("--role", choices=sorted(ROLES), default="housekeeping")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--period-ms", type=positive(float), help="latency task period")
    p.add_argument("--busy-ms", type=positive(float), help="latency task busy phase")
    p.add_argument("--deadline-ms", type=positive(float), help="latency task deadline after its wake")
    p.add_argument("--working-set", type=positive(int), default=1500, help="housekeeping pages held")
    p.add_argument("--irq-hz", type=positive(float), default=200.0, help="housekeeping IRQ rate")
    p.add_argument("--heartbeat-ms", type=positive(float), default=50.0)
    p.add_argument("--parent-pid", type=int, help="stop when this process is gone (set by launchers)")
    args = p.parse_args(argv)
    if args.cpu < 0:
        p.error(f"--cpu must be >= 0, got {args.cpu}")
    return args


def task_config(args) -> TaskConfig:
    base = TaskConfig.for_role(args.role)
    return TaskConfig(period_s=(args.period_ms or base.period_s * 1e3) / 1e3,
                      busy_s=(args.busy_ms or base.busy_s * 1e3) / 1e3,
                      deadline_s=(args.deadline_ms or base.deadline_s * 1e3) / 1e3,
                      allocs=base.allocs, working_set=args.working_set, irq_hz=args.irq_hz)


async def register(stub, request, deadline: float):
    while True:
        try:
            return await stub.Register(request, timeout=2.0)
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def heartbeat(stub, runtime, interval: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            reply = await stub.Heartbeat(pb.HeartbeatRequest(cpu=runtime.cpu_id,
                                                             pcp_count=runtime.pcp.count), timeout=1.0)
            runtime.zone.free_pages = reply.free_pages
            runtime.zone.reclaim_active = reply.reclaim_active
        except grpc.aio.AioRpcError:
            pass  # the coordinator notices missing heartbeats; keep trying
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except asyncio.TimeoutError:
            pass


async def main(args) -> None:
    # A shorter GIL switch interval keeps the CPU thread's wake-ups prompt while the
    # interconnect thread is busy serialising a message.
    sys.setswitchinterval(0.0005)
    registry = exposition.process_registry()  # this process's own: never prometheus_client's global one
    rpc_metrics = RpcMetricsInterceptor(registry, [pb.DESCRIPTOR.services_by_name["Node"]])
    server = grpc.aio.server(interceptors=[rpc_metrics])
    holder = {}
    pb_grpc.add_NodeServicer_to_server(NodeServicer(_Late(holder)), server)
    port = server.add_insecure_port(args.listen)
    host = args.listen.rsplit(":", 1)[0]
    await server.start()
    address = f"{host}:{port}"
    metrics = exposition.serve(args.metrics_listen, registry)
    metrics_address = metrics.address if metrics else ""

    aio_channel = grpc.aio.insecure_channel(args.coordinator)
    stub = pb_grpc.CoordinatorStub(aio_channel)
    reply = await register(stub, pb.RegisterRequest(cpu=args.cpu, address=address, role=ROLES[args.role],
                                                    metrics_address=metrics_address),
                           time.monotonic() + 30)
    cost = CostModel(time_scale=reply.time_scale)
    sync_channel = grpc.insecure_channel(args.coordinator)
    zone = ZoneClient(sync_channel, args.cpu)
    zone.free_pages = reply.zone.free_pages
    runtime = NodeRuntime(args.cpu, args.role, reply.high, reply.batch, zone,
                          pb_grpc.CoordinatorStub(sync_channel), args.seed, cost,
                          task_config(args), time.monotonic, registry=registry)
    holder["runtime"] = runtime
    runtime.start()
    print(f"node cpu{args.cpu} role={args.role} listening on {address}", flush=True)
    if metrics:
        print(f"node cpu{args.cpu} metrics on http://{metrics_address}/metrics", flush=True)

    stop = stop_event(args.parent_pid)
    beat = asyncio.create_task(heartbeat(stub, runtime, args.heartbeat_ms / 1000.0, stop))
    await stop.wait()
    await beat
    runtime.stop()
    await server.stop(0.5)
    await aio_channel.close()
    sync_channel.close()
    if metrics:
        metrics.close()


class _Late:
    """The servicer's view of the runtime, which exists only after registration."""

    def __init__(self, holder: dict):
        self._holder = holder

    def __getattr__(self, name):
        try:
            runtime = self._holder["runtime"]
        except KeyError:
            raise Unavailable("node is still registering") from None
        return getattr(runtime, name)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
