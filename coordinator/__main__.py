"""`python -m coordinator`: the coordinator process.

Owns the zone, membership and drain_all_pages. Prints `LISTENING host:port` as its
first line on stdout once it serves, so a launcher can find it with port 0, and logs
`METRICS host:port` (stderr) for its /metrics endpoint (also in GetState).

Every flag is also a PCPSIM_* environment variable (node.shared.config). The gRPC port also
serves the standard health service (node.shared.health): SERVING once it serves.
"""

import argparse
import asyncio
import dataclasses
import logging
import sys
import threading
import time

from coordinator.contig import ContigRanges, retake
from coordinator.cpu_hotplug import CpuHotplug
from coordinator.drain.drain_all import unrunnable
from coordinator.drain.drainer import Drainer
from coordinator.drain.record import STRATEGIES
from coordinator.drain.strategy import FLUSH_TIMEOUT_MS, GP_TIMEOUT_MS, LEASE_MS
from coordinator.hotplug import Reaper
from coordinator.membership import Membership
from coordinator.membership_rule import DEAD_TIMEOUT_MS, FAILURE_TIMEOUT_MS
from coordinator.metrics import AuditMetrics, CoordinatorCollector, DrainMetrics
from coordinator.pageset import Pageset
from coordinator.recovery import Recovery, recovery_window
from coordinator.registration import Registration
from coordinator.server import CoordinatorServicer
from coordinator.store import Store, StoreError
from coordinator.zone_service import ZoneService
from node.api.epoch import epoch_metadata
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.api.validate import MAX_FLUSH_MS, MAX_LEASE_MS
from node.mm import profile as profiles
from node.mm.watermark import pageset_batch
from node.mm.zone import DEFAULT_ZONE_MB, MAX_ZONE_MB, ZONE_START_PFN, Zone, zone_pages
from node.shared import exposition, lifecycle, logs, security, transfer_log
from node.shared.config import DEFAULT, EnvArgumentParser, host_port, int_range, positive
from node.shared.cpulist import MAX_CPUS, parse_cpu_list
from node.shared.faults import Faults
from node.shared.server import build_server
from node.shared.timebase import TIME_SCALE, CostModel, cost_model_arg, lease_clock

MAX_TIMEOUT_MS = 600_000

log = logging.getLogger(__name__)


def fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def parse_args(argv=None, environ=None) -> argparse.Namespace:
    """Flags, each also an environment variable (node.shared.config: a flag wins over its variable)."""
    p = EnvArgumentParser(
        prog="python -m coordinator",
        description="The pcpsim coordinator: zone, membership, drain_all_pages.",
        environ=environ,
    )
    p.add_argument(
        "--listen",
        type=host_port,
        default="127.0.0.1:0",
        env="PCPSIM_LISTEN",
        help="gRPC listen address HOST:PORT (port 0: any free port)",
    )
    exposition.add_metrics_listen_flag(p)
    p.add_argument(
        "--nodes",
        type=int_range(1, MAX_CPUS),
        required=True,
        env="PCPSIM_NODES",
        help=f"number of simulated CPUs (1..{MAX_CPUS})",
    )
    p.add_argument(
        "--nohz-full",
        default="",
        env="PCPSIM_NOHZ_FULL",
        metavar="CPULIST",
        help="the machine's nohz_full= boot parameter: the CPUs whose nodes register isolated, kernel "
        "CPU-list syntax. Known from the start, so qpw's key is on before they register and after a "
        "restart, and a node whose role disagrees is refused; CPUs beyond --nodes are left out. Default: "
        "not given, the registered roles say",
    )
    p.add_argument(
        "--zone-mb",
        type=int_range(1, MAX_ZONE_MB),
        default=DEFAULT_ZONE_MB,
        env="PCPSIM_ZONE_MB",
        help=f"zone size in MiB (1..{MAX_ZONE_MB}; >= 688 gives the kernel's batch of 63)",
    )
    p.add_argument(
        "--zone-used",
        type=fraction,
        default=0.0,
        env="PCPSIM_ZONE_USED",
        help="fraction of the zone held by the rest of the system at start (memory pressure)",
    )
    p.add_argument(
        "--kernel",
        choices=profiles.LIVE,
        default=profiles.DEFAULT_KERNEL,
        env="PCPSIM_KERNEL",
        help="kernel profile the CPUs run (node.mm.profile)",
    )
    p.add_argument(
        "--strategy",
        choices=sorted(STRATEGIES),
        env="PCPSIM_STRATEGY",
        help="drain strategy for drains that do not name one (direct reclaim); rcu-swap also gives "
        "every CPU RCU list sets (default: the kernel profile's)",
    )
    p.add_argument(
        "--time-scale",
        type=positive(float),
        default=TIME_SCALE,
        env="PCPSIM_TIME_SCALE",
        help="wall seconds per kernel second (wins over the --cost-model file's time_scale)",
    )
    p.add_argument(
        "--cost-model",
        metavar="FILE",
        type=cost_model_arg,
        env="PCPSIM_COST_MODEL",
        help="TOML file of modeled kernel costs, any CostModel field (node/costs/sapphire-rapids.toml: "
        "the defaults and their sources)",
    )
    p.add_argument(
        "--lease-ms",
        type=int_range(1, MAX_LEASE_MS),
        default=LEASE_MS,
        env="PCPSIM_LEASE_MS",
        help=f"remote pcp lock lease (1..{MAX_LEASE_MS}, the most a node grants)",
    )
    p.add_argument(
        "--rcu-gp-timeout-ms",
        type=int_range(1, MAX_LEASE_MS),
        default=GP_TIMEOUT_MS,
        env="PCPSIM_RCU_GP_TIMEOUT_MS",
        help=f"rcu-swap: a CPU that reports no quiescent state this long fails its drain (1..{MAX_LEASE_MS})",
    )
    p.add_argument(
        "--flush-timeout-ms",
        type=int_range(1, MAX_FLUSH_MS),
        default=FLUSH_TIMEOUT_MS,
        env="PCPSIM_FLUSH_TIMEOUT_MS",
        help=f"bound on a workqueue flush of one CPU (1..{MAX_FLUSH_MS})",
    )
    p.add_argument(
        "--failure-timeout-ms",
        type=int_range(1, MAX_TIMEOUT_MS),
        default=FAILURE_TIMEOUT_MS,
        env="PCPSIM_FAILURE_TIMEOUT_MS",
        help="a node without heartbeats this long is down (drains skip it); also the node's membership lease",
    )
    p.add_argument(
        "--dead-timeout-ms",
        type=int_range(1, MAX_TIMEOUT_MS),
        default=DEAD_TIMEOUT_MS,
        env="PCPSIM_DEAD_TIMEOUT_MS",
        help="a node without heartbeats this long is dead: its pages go back to the zone "
        "(must exceed --failure-timeout-ms); also the recovery window after a restart",
    )
    p.add_argument(
        "--heartbeat-budget",
        type=int_range(1, 100_000),
        default=256,
        env="PCPSIM_HEARTBEAT_BUDGET",
        help="heartbeats per second the coordinator takes from all nodes together: each node "
        "beats every N/budget seconds (at most a quarter of the failure timeout), or at "
        "its own --heartbeat-ms if that is longer (1..100000)",
    )
    p.add_argument(
        "--unsafe-declare-dead-on-lost-commit",
        action="store_true",
        env="PCPSIM_UNSAFE_DECLARE_DEAD_ON_LOST_COMMIT",
        help="TEST ONLY: declare a node dead when a drain's commit goes unanswered for the dead "
        "timeout, its membership lease still running (the old behaviour: a live CPU's pages are "
        "handed out again while it still uses them)",
    )
    p.add_argument(
        "--state-dir",
        env="PCPSIM_STATE_DIR",
        help="directory of the coordinator's durable state (coordinator.store: its epoch and the CMA and "
        "offline ranges it took), written before each change is answered; without it nothing survives a "
        "restart: the epoch starts at 1 again and those ranges are handed out to the CPUs",
    )
    p.add_argument(
        "--unsafe-forget-ranges",
        action="store_true",
        env="PCPSIM_UNSAFE_FORGET_RANGES",
        help="TEST ONLY: do not take the stored CMA and offline ranges out of the zone at start (the "
        "restart-after-cma scenario's broken variant)",
    )
    p.add_argument(
        "--unsafe-no-epoch",
        action="store_true",
        env="PCPSIM_UNSAFE_NO_EPOCH",
        help="TEST ONLY: send epoch 0 (none, not checked) to the nodes, so a replaced coordinator is not "
        "fenced (the two-coordinators scenario's broken variant)",
    )
    security.add_arguments(p)
    logs.add_log_level_flag(p)
    lifecycle.add_parent_pid_flag(p)
    transfer_log.add_flag(
        p, "PCPSIM_TRANSFER_LOG", "the zone (what no node sees: dead CPUs, claims, ranges)", per_cpu=False
    )
    args = p.parse_args(argv)
    try:
        args.store = Store.open(args.state_dir)
    except StoreError as err:
        p.error(str(err))
    args.security = security.from_args(args, security.OPERATOR, p.error)
    try:
        # Bounded as the nodes' PCPSIM_ISOLATED is (each pod reads it without the cluster's size), so
        # the one list serves any --nodes; main() leaves out the CPUs this cluster does not have.
        args.nohz_full = parse_cpu_list(args.nohz_full)
    except ValueError as err:
        p.error(f"--nohz-full: {err}")
    if args.dead_timeout_ms <= args.failure_timeout_ms:
        p.error(
            f"--dead-timeout-ms ({args.dead_timeout_ms}) must exceed --failure-timeout-ms "
            f"({args.failure_timeout_ms}): a node must stop using its pages before they are taken"
        )
    args.cost = args.cost_model or CostModel()
    if p.sources["time_scale"] != DEFAULT:  # --time-scale (or its variable) wins over the file
        args.cost = dataclasses.replace(args.cost, time_scale=args.time_scale)
    args.time_scale = args.cost.time_scale
    profile = profiles.get(args.kernel)
    args.strategy = args.strategy or profile.strategy
    if why := unrunnable(STRATEGIES[args.strategy], STRATEGIES[args.strategy], profile):
        p.error(f"--strategy {args.strategy}: {why}")
    return args


async def main(args) -> None:
    # The zone-lock thread must get the GIL back promptly when its modeled hold ends,
    # not after the default 5 ms switch interval of a busy event loop.
    sys.setswitchinterval(0.0005)
    logs.setup(args.log_level, "coordinator")
    cost = args.cost
    zone = Zone(
        ZONE_START_PFN,
        zone_pages(args.zone_mb),
        args.nodes,
        lock=threading.Lock(),  # zone->lock: its caller gives it
        pcppage_migratetype_cached=profiles.get(args.kernel).pcppage_migratetype_cached,
    )
    pageset = Pageset(zone, pageset_batch(zone.managed_pages), args.nodes)
    store = args.store
    epoch = store.begin_epoch()  # durable before anything is served
    # Every line carries the epoch: a replaced coordinator still running writes to the same log (chaos.transfers).
    zone_service = ZoneService(
        zone, cost, transfer_log=transfer_log.open_log(args.transfer_log, time.monotonic, epoch=epoch)
    )
    # Deterministic: a restarted coordinator takes the very same blocks again (coordinator.recovery).
    zone_service.preallocate(int(zone.managed_pages * args.zone_used))
    if store.directory is None:
        log.warning("no --state-dir: a restart forgets this coordinator's epoch and its CMA and offline ranges")
    elif store.ranges and not args.unsafe_forget_ranges:
        # After preallocate (the same blocks as at the first start), before any node's holdings are claimed.
        try:
            log.info("state: %d base pages of stored ranges taken again", retake(zone_service, store.ranges))
        except ValueError as err:
            raise SystemExit(f"{store.path}: {err}") from None
    log.info("coordinator epoch %d%s", epoch, f" (state in {store.directory})" if store.directory else "")
    sent_epoch = 0 if args.unsafe_no_epoch else epoch
    sec = args.security
    membership = Membership(
        args.nodes,
        lease_clock,
        args.failure_timeout_ms / 1000.0,
        args.dead_timeout_ms / 1000.0,
        # Every request to a node carries the epoch (node.epoch checks it).
        sec=dataclasses.replace(sec, metadata=epoch_metadata(sent_epoch)),
        heartbeat_budget=args.heartbeat_budget,
        nohz_full=[cpu for cpu in args.nohz_full if cpu < args.nodes],
    )
    membership.graveyard = store  # the processes declared dead, kept across restarts (coordinator.store)
    if beyond := [cpu for cpu in args.nohz_full if cpu >= args.nodes]:
        log.warning("--nohz-full: CPUs %s are not among this cluster's %d: left out", beyond, args.nodes)
    recovery = Recovery(membership, recovery_window(membership.dead_timeout), time.monotonic, store.rebuilt_zone)
    registry = exposition.process_registry()  # this process's own: never prometheus_client's global one
    drain_metrics = DrainMetrics(registry, args.nodes)
    faults = Faults()
    drainer = Drainer(
        membership,
        zone_service,
        STRATEGIES[args.strategy],
        time.monotonic,
        lease_ms=args.lease_ms,
        flush_timeout_ms=args.flush_timeout_ms,
        on_record=drain_metrics.observe,
        faults=faults,
        gp_timeout_ms=args.rcu_gp_timeout_ms,
        profile=profiles.get(args.kernel),
        epoch=epoch,
    )
    reaper = drainer.control.reaper = Reaper(membership, zone_service, drainer, pageset)
    drainer.control.declare_dead_on_lost_commit = args.unsafe_declare_dead_on_lost_commit
    registry.register(CoordinatorCollector(zone_service, membership, drainer, args.time_scale, recovery, reaper))
    audit_metrics = AuditMetrics(registry)
    metrics = exposition.serve(args.metrics_listen, registry)
    servicer = CoordinatorServicer(
        membership,
        Registration(membership, zone_service, drainer, pageset, recovery),
        zone_service,
        drainer,
        pageset,
        recovery,
        args.time_scale,
        metrics_address=metrics.address if metrics else "",
        on_audit=audit_metrics.observe,
        faults=faults,
        kernel=args.kernel,
        contig=ContigRanges(zone_service, drainer, time.monotonic, pageset, membership, store),
        epoch=sent_epoch,
        hotplug=CpuHotplug(membership, drainer, pageset, time.monotonic),
    )
    server, port, health = await build_server(
        pb.DESCRIPTOR.services_by_name["Coordinator"],
        pb_grpc.add_CoordinatorServicer_to_server,
        servicer,
        args.listen,
        sec,
        registry,
        faults,
        reply_fields={"coordinator_epoch": sent_epoch},  # every ZoneStream reply, a refusal's too (node.epoch)
    )
    await server.start()
    recovery.begin()
    await health.serving()  # ready as soon as it serves: nodes register whenever they come
    host = args.listen.rsplit(":", 1)[0]
    print(f"LISTENING {host}:{port}", flush=True)
    if metrics:
        log.info("METRICS %s", metrics.address)
    log.info("zone %d MiB: batch %d high %d watermarks %s", args.zone_mb, pageset.batch, pageset.high, zone.watermark)
    reaping = asyncio.create_task(reaper.run(membership.reaper_interval()))
    stop = lifecycle.stop_event(args.parent_pid)
    await stop.wait()
    reaping.cancel()
    await health.stopping()
    await server.stop(0.5)
    await membership.close()
    zone_service.close()
    if metrics:
        metrics.close()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
