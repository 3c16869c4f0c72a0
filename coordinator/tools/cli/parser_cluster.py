"""The parsers of the commands that start a local cluster or act on a running one: cluster up, drain,
cma-alloc, offline, cpu, release, state, audit (coordinator.tools.cli.parser builds the rest)."""

import os

from coordinator.contig_rule import DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS
from coordinator.drain.record import STRATEGIES
from coordinator.tools.cli import flags
from coordinator.tools.cli.connect import DEFAULT_STATE, add_target
from coordinator.tools.topology import DEFAULT_ISOLATED, DEFAULT_NODES, DEFAULT_RT
from node.mm import profile as profiles
from node.mm.zone import DEFAULT_ZONE_MB, MAX_ZONE_MB, ZONE_START_PFN, zone_pages
from node.shared.config import int_range
from node.shared.cpulist import MAX_CPUS

# A range (cma-alloc, offline, release) lies in the largest zone a cluster has: bounds the coordinator
# would refuse anyway, checked here so that a value past the wire's field is not a traceback.
RANGE_PAGES = int_range(1, zone_pages(MAX_ZONE_MB))
RANGE_START_PFN = int_range(1, ZONE_START_PFN + zone_pages(MAX_ZONE_MB) - 1)


def add_parsers(sub) -> None:
    """The cluster commands' parsers, on the top level's subparsers `sub`."""
    cluster = sub.add_parser("cluster", help="run a local cluster")
    csub = cluster.add_subparsers(dest="cluster_command", required=True, metavar="ACTION")
    up = csub.add_parser("up", help="start a coordinator and N nodes on 127.0.0.1 and run until Ctrl-C")
    # Not given: None, so that coordinator.tools.cli.cluster.topology can tell a layout given in
    # part (the rest: 4 CPUs, none isolated) from none given (the default layout).
    unless = "if none of --nodes, --isolated, --rt is given, else none"
    up.add_argument(
        "--nodes", type=int_range(1, MAX_CPUS), help=f"simulated CPUs, 1..{MAX_CPUS} (default {DEFAULT_NODES})"
    )
    up.add_argument(
        "--isolated", help=f"isolated CPUs running a latency task, e.g. 2-3 (default: {DEFAULT_ISOLATED} {unless})"
    )
    up.add_argument("--rt", help=f"which isolated CPUs run the RT task (default: {DEFAULT_RT} {unless})")
    up.add_argument(
        "--workload", metavar="FILE", type=flags.workload, help=flags.WORKLOAD_HELP + " (not with --isolated/--rt)"
    )
    up.add_argument(
        "--kernel",
        choices=profiles.LIVE,
        default=profiles.DEFAULT_KERNEL,
        help=f"kernel profile the CPUs run: {', '.join(profiles.LIVE)} (default %(default)s)",
    )
    up.add_argument(
        "--strategy",
        choices=sorted(STRATEGIES),
        help="strategy for direct-reclaim drains (default: the kernel profile's); rcu-swap also "
        "gives every CPU RCU list sets",
    )
    up.add_argument("--seed", type=flags.seed, default=1)
    up.add_argument("--cost-model", metavar="FILE", type=flags.cost_model_file, help=flags.COST_MODEL_HELP)
    up.add_argument(
        "--zone-mb",
        type=int_range(1, MAX_ZONE_MB),
        default=DEFAULT_ZONE_MB,
        help=f"zone size, 1..{MAX_ZONE_MB} MiB (default %(default)s)",
    )
    up.add_argument(
        "--zone-used",
        type=flags.fraction,
        default=0.0,
        help="fraction of the zone held by others from the start (memory pressure)",
    )
    up.add_argument("--run-dir", help="where process logs go (default .pcpsim/run-TIMESTAMP)")
    up.add_argument(
        "--state",
        default=os.environ.get("PCPSIM_STATE", DEFAULT_STATE),
        help="state file to write (default %(default)s)",
    )
    up.add_argument(
        "--listen-host",
        type=flags.listen_host,
        default="127.0.0.1",
        help="address every process binds (default %(default)s: this machine only)",
    )
    up.add_argument(
        "--no-auth",
        action="store_true",
        help="do not generate tokens: any client that reaches a port may call every RPC",
    )
    up.add_argument("--tls-cert", help="PEM certificate every process serves and dials with (SAN: the listen host)")
    up.add_argument("--tls-key", help="PEM private key of --tls-cert")
    up.add_argument("--tls-ca", help="PEM CA every process checks its peers against")
    up.add_argument("--tls-client-auth", action="store_true", help="mutual TLS: require client certificates")
    up.add_argument(
        "--prometheus",
        action="store_true",
        help="also run a local Prometheus (binary `prometheus`) scraping every process, with the "
        "rules of deploy/prometheus; its data goes under the run dir",
    )

    drain = sub.add_parser("drain", help="run drain_all_pages once on a running cluster")
    drain.add_argument("--strategy", choices=sorted(STRATEGIES), required=True)
    drain.add_argument("--force-all-cpus", action="store_true", help="drain every CPU, not only those with pages")
    drain.add_argument("--json", action="store_true", help="print the result as JSON")
    add_target(drain)

    for name, help_ in (
        (
            "cma-alloc",
            "alloc_contig_range on a running cluster: isolate the range, drain "
            "(zone-specific, waits for a running drain), take it out of the buddy",
        ),
        (
            "offline",
            "offline_pages on a running cluster: zone_pcp_disable (high 0, batch 1, "
            "drain forced on every CPU), take the range out of the buddy, zone_pcp_enable",
        ),
    ):
        c = sub.add_parser(name, help=help_)
        c.add_argument(
            "--pages",
            type=RANGE_PAGES,
            required=True,
            help="range size in pages, a multiple of the pageblock (512)",
        )
        c.add_argument(
            "--start-pfn",
            type=RANGE_START_PFN,
            help="first pfn, pageblock aligned (default: the last --pages pages of the zone)",
        )
        c.add_argument(
            "--timeout-ms",
            type=int_range(1, MAX_TIMEOUT_MS),
            default=DEFAULT_TIMEOUT_MS,
            help=f"how long pages in use may keep the range busy, 1..{MAX_TIMEOUT_MS} (default %(default)s)",
        )
        c.add_argument("--json", action="store_true", help="print the result as JSON")
        add_target(c)
    cpu = sub.add_parser(
        "cpu",
        help="CPU hotplug on a running cluster: offline stops the CPU's tasks, drains "
        "its lists from the coordinator and recomputes high; online recomputes it again",
    )
    cpu.add_argument("action", choices=["offline", "online"])
    cpu.add_argument("cpu", type=int_range(0, MAX_CPUS - 1), metavar="N")
    add_target(cpu)
    rel = sub.add_parser("release", help="give a range taken by cma-alloc or offline back to the buddy")
    rel.add_argument("--start-pfn", type=RANGE_START_PFN, required=True)
    rel.add_argument("--pages", type=RANGE_PAGES, required=True)
    add_target(rel)

    state = sub.add_parser("state", help="per-CPU pcp lists, zone free pages per order, audit verdict")
    state.add_argument("--json", action="store_true")
    state.add_argument("--no-audit", action="store_true", help="skip the stop-the-world audit")
    add_target(state)

    audit = sub.add_parser("audit", help="stop the world and check that every page is in exactly one place")
    add_target(audit)
