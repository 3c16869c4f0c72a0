"""`python -m node`: one simulated CPU as a process.

Starts the gRPC server (the interconnect) on an asyncio loop, registers with the
coordinator (which answers with the pcp's high and batch), starts the CPU thread and
sends heartbeats carrying the pcp count. SIGTERM or SIGINT stops it cleanly.

Every flag is also a PCPSIM_* environment variable (node.shared.config), so one container spec
serves every CPU: a StatefulSet pod takes its CPU number from its hostname's ordinal
(--cpu-from-hostname), its role from a shared map (--isolated/--rt) and registers the
stable name it is reached at (--advertise). The gRPC port also serves the standard health
service (node.shared.health): NOT_SERVING until the node has registered and its CPU thread runs.
"""

import argparse
import asyncio
import dataclasses
import os
import socket
import sys
import time

from node import rtapp, wake_probe
from node.agent import REGISTER_TIMEOUT_S, Agent, register_until_answered
from node.agent_rule import HEARTBEAT_S
from node.api.errors import Unavailable
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.cpu_report import ROLES
from node.epoch import CoordinatorEpoch
from node.mm import profile as profiles
from node.runtime import NodeRuntime, TaskConfig
from node.server import STOP_GRACE_S, NodeServicer
from node.shared import exposition, lifecycle, logs, security, transfer_log
from node.shared.config import (
    ENV,
    FLAG,
    EnvArgumentParser,
    advertised,
    advertised_metrics,
    cpu_from_hostname,
    dialable,
    host_port,
    int_range,
    positive,
)
from node.shared.cpulist import MAX_CPUS, parse_cpu_list, role_for_cpu
from node.shared.faults import Faults
from node.shared.server import build_server
from node.shared.timebase import CostModel, cost_model_arg, lease_clock
from node.tasks import IRQ_HZ, WORKING_SET
from node.wall_ids import WALL_IDS
from node.zone_client import ZoneClient


def parse_args(argv=None, environ=None, hostname=socket.gethostname) -> argparse.Namespace:
    """Flags, each also an environment variable (node.shared.config: a flag wins over its variable)."""
    p = EnvArgumentParser(prog="python -m node", description="One simulated CPU of a pcpsim cluster.", environ=environ)
    p.add_argument(
        "--cpu",
        type=int_range(0, MAX_CPUS - 1),
        env="PCPSIM_CPU",
        help=f"this CPU's number, 0..{MAX_CPUS - 1} (or --cpu-from-hostname)",
    )
    p.add_argument(
        "--cpu-from-hostname",
        action="store_true",
        env="PCPSIM_CPU_FROM_HOSTNAME",
        help="take the CPU number from the hostname's trailing -N (a StatefulSet pod's ordinal)",
    )
    p.add_argument(
        "--hostname",
        env="PCPSIM_HOSTNAME",
        help="the name --cpu-from-hostname reads (default: this machine's hostname)",
    )
    p.add_argument(
        "--coordinator",
        type=dialable,
        required=True,
        env="PCPSIM_COORDINATOR",
        help="coordinator address HOST:PORT (a DNS name or an IP)",
    )
    p.add_argument(
        "--listen",
        type=host_port,
        default="127.0.0.1:0",
        env="PCPSIM_LISTEN",
        help="gRPC listen address HOST:PORT (port 0: any free port)",
    )
    p.add_argument(
        "--advertise",
        type=host_port,
        env="PCPSIM_ADVERTISE",
        help="address the coordinator reaches this node at, registered with it "
        "(default: the listen host and the bound port; port 0 here: the bound port)",
    )
    exposition.add_metrics_listen_flag(p)
    p.add_argument(
        "--role",
        choices=sorted(ROLES),
        env="PCPSIM_ROLE",
        help="this CPU's role (default: from --isolated/--rt, else housekeeping)",
    )
    p.add_argument(
        "--isolated",
        type=cpu_list,
        env="PCPSIM_ISOLATED",
        help="role map: CPU list of isolated CPUs (e.g. 2-3); this CPU's role follows from its number",
    )
    p.add_argument(
        "--rt",
        type=cpu_list,
        env="PCPSIM_RT",
        help="role map: CPU list of isolated CPUs that run the RT task (a subset of --isolated)",
    )
    p.add_argument(
        "--workload",
        metavar="FILE",
        type=workload_file,
        env="PCPSIM_WORKLOAD",
        help="rt-app task set (node.rtapp): this CPU runs the task naming it, and its role follows "
        "(default: node/workloads/default.json's task of this CPU's role)",
    )
    p.add_argument("--seed", type=int, default=1, env="PCPSIM_SEED", help="random seed")
    p.add_argument("--period-ms", type=positive(float), env="PCPSIM_PERIOD_MS", help="latency task period")
    p.add_argument("--busy-ms", type=positive(float), env="PCPSIM_BUSY_MS", help="latency task busy phase")
    p.add_argument(
        "--deadline-ms", type=positive(float), env="PCPSIM_DEADLINE_MS", help="latency task deadline after its wake"
    )
    p.add_argument(
        "--working-set",
        type=positive(int),
        default=WORKING_SET,
        env="PCPSIM_WORKING_SET",
        help="housekeeping pages held",
    )
    p.add_argument("--irq-hz", type=positive(float), default=IRQ_HZ, env="PCPSIM_IRQ_HZ", help="housekeeping IRQ rate")
    p.add_argument(
        "--heartbeat-ms",
        type=positive(float),
        default=HEARTBEAT_S * 1000,
        env="PCPSIM_HEARTBEAT_MS",
        help="heartbeat interval (the shortest: the coordinator paces a large cluster slower)",
    )
    p.add_argument(
        "--register-timeout-s",
        type=positive(float),
        default=30.0,
        env="PCPSIM_REGISTER_TIMEOUT_S",
        help="keep asking to register (the same request) while the coordinator is unreachable "
        "or its answer is lost, this long",
    )
    p.add_argument(
        "--cost-model",
        metavar="FILE",
        type=cost_model_arg,
        env="PCPSIM_COST_MODEL",
        help="TOML file of modeled kernel costs (node.shared.timebase); its time_scale is ignored: "
        "the coordinator's is the cluster's",
    )
    security.add_arguments(p)
    logs.add_log_level_flag(p)
    p.add_argument(
        "--wake-probe",
        metavar="DIR",
        type=wake_probe.directory,
        env="PCPSIM_WAKE_PROBE",
        help="also run a bare timer thread (node.wake_probe, the noise floor of `pcpsim bench`) "
        "and write its wake lateness to DIR/cpuN.json on exit",
    )
    lifecycle.add_parent_pid_flag(p)
    transfer_log.add_flag(p, "PCPSIM_TRANSFER_LOG", "this CPU", per_cpu=True)
    p.add_argument(
        "--unsafe-skip-fencing",
        action="store_true",
        env="PCPSIM_UNSAFE_SKIP_FENCING",
        help="TEST ONLY: accept a remote drainer's commit after its lease ran out (the checker's "
        "broken variant: pages end up both here and in the zone)",
    )
    p.add_argument(
        "--unsafe-register-once",
        action="store_true",
        env="PCPSIM_UNSAFE_REGISTER_ONCE",
        help="TEST ONLY: when rejoining, send Register once and keep the CPU parked if its answer "
        "is lost (the old behaviour: a registration the coordinator applied leaves the CPU "
        "parked for ever)",
    )
    args = p.parse_args(argv)
    args.security = security.from_args(args, security.NODE, p.error)
    args.cpu = _resolve_cpu(p, args, hostname)
    args.role = _resolve_role(p, args)
    return args


def _resolve_cpu(p: EnvArgumentParser, args, hostname) -> int:
    """--cpu or --cpu-from-hostname: a flag wins over a variable; both at one level is an error."""
    for level, names in ((FLAG, ("--cpu", "--cpu-from-hostname")), (ENV, ("PCPSIM_CPU", "PCPSIM_CPU_FROM_HOSTNAME"))):
        by_number, by_name = p.given(args, "cpu", level), p.given(args, "cpu_from_hostname", level)
        if by_number and by_name:
            p.error(f"{names[0]} and {names[1]} both given: use one")
        if by_number:
            return args.cpu
        if by_name:
            name = args.hostname or hostname()
            try:
                return cpu_from_hostname(name)
            except ValueError as err:
                p.error(f"--cpu-from-hostname: {err}")
    p.error("the CPU number is required: --cpu N (PCPSIM_CPU) or --cpu-from-hostname (PCPSIM_CPU_FROM_HOSTNAME=1)")


def _resolve_role(p: EnvArgumentParser, args) -> str:
    """--role names the role; the map (--isolated/--rt) derives it from the CPU number.
    A flag wins over a variable; a role and a map at one level is an error."""
    for level, names in ((FLAG, ("--role", "--isolated/--rt")), (ENV, ("PCPSIM_ROLE", "PCPSIM_ISOLATED/PCPSIM_RT"))):
        named = p.given(args, "role", level)
        mapped = p.given(args, "isolated", level) or p.given(args, "rt", level)
        if named and mapped:
            p.error(f"{names[0]} and {names[1]} both given: use one")
        if named:
            return _workload_role(p, args, args.role)
        if mapped:
            try:
                return _workload_role(p, args, role_for_cpu(args.cpu, args.isolated or [], args.rt or []))
            except ValueError as err:
                p.error(f"{names[1]}: {err}")
    return _workload_role(p, args, "housekeeping", given=False)


def _workload_role(p: EnvArgumentParser, args, role: str, given: bool = True) -> str:
    """With a task set, this CPU's role is its task's; a role also given must agree with it."""
    if args.workload is None:
        return role
    derived = args.workload.role_of(args.cpu)
    if given and role != derived:
        p.error(f"--workload makes cpu{args.cpu} {derived}, but its role was given as {role}")
    return derived


def workload_file(path: str) -> rtapp.Workload:
    """argparse type: an rt-app task set, parsed (a bad one is refused before anything starts)."""
    try:
        return rtapp.load(path)
    except rtapp.WorkloadError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def cpu_list(text: str) -> list[int]:
    """argparse type: a kernel-style CPU list."""
    try:
        return parse_cpu_list(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def task_config(args) -> TaskConfig:
    """This CPU's task: its task set's, else the default set's of its role; the flags override
    the period, busy time (one run phase) and deadline."""
    task = args.workload.task_on(args.cpu) if args.workload is not None else None
    base = TaskConfig.for_task(task) if task is not None else TaskConfig.for_role(args.role)
    return TaskConfig(
        period_s=(args.period_ms or base.period_s * 1e3) / 1e3,
        busy_s=(args.busy_ms or base.busy_s * 1e3) / 1e3,
        deadline_s=(args.deadline_ms or base.deadline_s * 1e3) / 1e3,
        allocs=base.allocs,
        working_set=args.working_set,
        irq_hz=args.irq_hz,
        segments=() if args.busy_ms else base.segments,
        loops=base.loops,
    )


async def main(args) -> None:
    # A shorter GIL switch interval keeps the CPU thread's wake-ups prompt while the
    # interconnect thread is busy serialising a message.
    sys.setswitchinterval(0.0005)
    logs.setup(args.log_level, f"cpu{args.cpu}")
    registry = exposition.process_registry()  # this process's own: never prometheus_client's global one
    sec = args.security
    holder: dict[str, NodeRuntime] = {}  # the runtime, once registration has made it
    faults = Faults(on_cost_factor=lambda f: holder["runtime"].set_cost_factor(f))
    servicer = NodeServicer(_Late(holder), faults)
    server, port, health = await build_server(
        pb.DESCRIPTOR.services_by_name["Node"],
        pb_grpc.add_NodeServicer_to_server,
        servicer,
        args.listen,
        sec,
        registry,
        faults,
    )
    await server.start()
    address = advertised(args.listen, port, args.advertise)
    metrics = exposition.serve(args.metrics_listen, registry)
    metrics_address = advertised_metrics(metrics.address, args.advertise) if metrics else ""

    aio_channel = security.aio_channel(args.coordinator, sec)
    stub = pb_grpc.CoordinatorStub(aio_channel)
    request = pb.RegisterRequest(
        cpu=args.cpu,
        address=address,
        role=ROLES[args.role],
        metrics_address=metrics_address,
        incarnation=WALL_IDS.incarnation(),
    )
    # Asked again, the same incarnation, while its outcome is unknown: a lost answer to a
    # registration the coordinator applied must not leave this CPU unregistered (node.agent).
    give_up_at = time.monotonic() + args.register_timeout_s
    sent_at, reply = await register_until_answered(
        lambda r: stub.Register(r, timeout=REGISTER_TIMEOUT_S),
        request,
        lease_clock,
        asyncio.Event(),
        lambda: time.monotonic() > give_up_at,
    )
    cost = dataclasses.replace(args.cost_model or CostModel(), time_scale=reply.time_scale)
    sync_channel = security.channel(args.coordinator, sec, peer=True)
    tlog = transfer_log.open_log(args.transfer_log, time.monotonic, cpu=args.cpu, inc=request.incarnation)
    epoch = CoordinatorEpoch()
    epoch.admit("Register", reply)
    zone = ZoneClient(sync_channel, args.cpu, request.incarnation, faults=faults, transfer_log=tlog, epoch=epoch)
    zone.free_pages = reply.zone.free_pages
    runtime = NodeRuntime(
        args.cpu,
        args.role,
        reply.high,
        reply.batch,
        zone,
        pb_grpc.CoordinatorStub(sync_channel),
        args.seed,
        cost,
        task_config(args),
        time.monotonic,
        registry=registry,
        fencing=not args.unsafe_skip_fencing,
        faults=faults,
        strategy=reply.strategy,
        kernel=reply.kernel or profiles.DEFAULT_KERNEL,
        transfer_log=tlog,
        high_max=reply.high_max,
    )
    runtime.incarnation = request.incarnation
    runtime.epoch = epoch  # the one the zone client checks replies with
    zone.fenced = runtime.fenced
    agent = Agent(stub, runtime, request, faults, register_once=args.unsafe_register_once)
    agent.registered(reply, sent_at)
    holder["runtime"] = runtime
    runtime.start(paused=agent.recovering)  # the CPU waits while the coordinator rebuilds its zone
    probe = None
    if args.wake_probe:
        probe = wake_probe.WakeProbe.beside(runtime.task, task_config(args).period_s)
        probe.start()
    await health.serving()
    print(f"node cpu{args.cpu} role={args.role} listening on {address}", flush=True)
    if metrics:
        print(f"node cpu{args.cpu} metrics on http://{metrics_address}/metrics", flush=True)

    stop = lifecycle.stop_event(args.parent_pid)
    beat = asyncio.create_task(agent.run(args.heartbeat_ms / 1000.0, stop))
    await stop.wait()
    await health.stopping()
    await beat
    runtime.stop()
    if probe is not None:
        probe.stop()
        probe.write(os.path.join(args.wake_probe, f"cpu{args.cpu}.json"))
    servicer.stopping.set()  # the drainers' streams end between requests: the grace is for what is in flight
    await server.stop(STOP_GRACE_S)
    await aio_channel.close()
    zone.close()
    sync_channel.close()
    if tlog is not None:
        tlog.close()
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
