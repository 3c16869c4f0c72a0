"""The `pcpsim` command.

  pcpsim cluster up --nodes N [--isolated LIST] [--rt LIST]   run a local cluster until Ctrl-C
                   [--kernel 5.19|6.1|6.2] [--strategy S]     ... with a kernel profile and default strategy
                   [--prometheus]                             ... and a local Prometheus scraping it
  pcpsim drain --strategy workqueue|remote [--force-all-cpus]  drain_all_pages on a running cluster
  pcpsim cma-alloc --pages N [--start-pfn P]                   alloc_contig_range: drain, take the range
  pcpsim offline --pages N [--start-pfn P]                     offline_pages: zone_pcp_disable, forced drain
  pcpsim release --start-pfn P --pages N                       give a CMA or offline range back to the buddy
  pcpsim cpu offline|online N                                  CPU hotplug: drain from a survivor, recompute high
  pcpsim state [--json]                                        per-CPU pcp, zone, audit verdict
  pcpsim audit                                                 stop-the-world page audit
  pcpsim compare [--quick] [--seed S] [--json PATH]            strategies side by side
                 [--strategies workqueue,remote,rcu-swap] [--kernel 5.19|6.1|6.2] [--trigger-mix cma=1]
  pcpsim report RESULTS.json [--out DIR] [--no-plots]          oslat/cyclictest/osnoise views and plots
  pcpsim bench [--quick] [--json PATH]                         figures against their floors, as ratios
  pcpsim tokens DIR                                            fresh token files for a deployment
  pcpsim chaos run FILE... [--strategy S] [--seed N] [--out D] scripted faults, checked page by page
  pcpsim chaos check RUN_DIR                                   the checker again, on a run's history

Commands that talk to a running cluster find it through the state file that
`cluster up` writes (--state, $PCPSIM_STATE, default .pcpsim/cluster.json) or
through --coordinator HOST:PORT. They authenticate with the operator token file the
state file names (or --token-file / $PCPSIM_TOKEN_FILE), and dial with TLS if the state
file or --tls-ca says so.
"""

import argparse
import dataclasses
import json
import os
import signal
import sys
import time

import grpc

from node.shared import security
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.mm.constants import MIGRATETYPE_NAMES, NR_PCP_LISTS, pindex_to_order, MIGRATE_PCPTYPES
from coordinator.tools.bench import figures as bench
from coordinator.tools.bench import figure as bench_figure
from coordinator.tools import compare
from coordinator.tools import plots
from coordinator.tools import prometheus
from coordinator.tools import report
from coordinator.tools.cluster import ClusterConfig, ClusterError, LocalCluster, TlsPaths, assign_roles
from node.shared.config import join_host_port
from node.shared.cpulist import parse_cpu_list
from node.mm import profile as profiles
from coordinator.drain.record import STRATEGIES, STRATEGY_NAMES, TRIGGER_NAMES

DEFAULT_STATE = os.path.join(".pcpsim", "cluster.json")


class CliError(Exception):
    pass


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _strategy_list(text: str) -> tuple:
    names = tuple(n.strip() for n in text.split(","))
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown strategy {', '.join(map(repr, unknown))}; "
                                         f"known: {', '.join(STRATEGIES)}")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a strategy named twice in {text!r}")
    return names


def _trigger_mix(text: str) -> tuple:
    mix = []
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name.strip() not in compare.TRIGGERS:
            raise argparse.ArgumentTypeError(f"unknown trigger {name.strip()!r}; known: {', '.join(compare.TRIGGERS)}")
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"weight of {name.strip()} is not a number: {weight!r}") from None
        if w < 0:
            raise argparse.ArgumentTypeError(f"weight of {name.strip()} must be >= 0, got {w}")
        mix.append((name.strip(), w))
    if sum(w for _, w in mix) <= 0:
        raise argparse.ArgumentTypeError("at least one trigger needs a weight > 0")
    return tuple(mix)


def _add_target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state", default=os.environ.get("PCPSIM_STATE", DEFAULT_STATE),
                   help="cluster state file written by `cluster up` (default %(default)s)")
    p.add_argument("--coordinator", help="coordinator address HOST:PORT (overrides --state)")
    security.add_arguments(p, env=False)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pcpsim", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cluster = sub.add_parser("cluster", help="run a local cluster")
    csub = cluster.add_subparsers(dest="cluster_command", required=True, metavar="ACTION")
    up = csub.add_parser("up", help="start a coordinator and N nodes on 127.0.0.1 and run until Ctrl-C")
    up.add_argument("--nodes", type=_positive_int, default=4, help="simulated CPUs (default %(default)s)")
    up.add_argument("--isolated", default="", help="isolated CPUs running a latency task, e.g. 2-3")
    up.add_argument("--rt", default="", help="which isolated CPUs run the RT task (default: none)")
    up.add_argument("--kernel", choices=sorted(profiles.PROFILES), default=profiles.DEFAULT_KERNEL,
                    help="kernel profile the CPUs run: 5.19, 6.1 or 6.2 (default %(default)s)")
    up.add_argument("--strategy", choices=sorted(STRATEGIES),
                    help="strategy for direct-reclaim drains (default: the kernel profile's); rcu-swap also "
                    "gives every CPU RCU list sets")
    up.add_argument("--seed", type=int, default=1)
    up.add_argument("--zone-mb", type=_positive_int, default=1024, help="zone size (default %(default)s MiB)")
    up.add_argument("--zone-used", type=_fraction, default=0.0,
                    help="fraction of the zone held by others from the start (memory pressure)")
    up.add_argument("--run-dir", help="where process logs go (default .pcpsim/run-TIMESTAMP)")
    up.add_argument("--state", default=os.environ.get("PCPSIM_STATE", DEFAULT_STATE),
                    help="state file to write (default %(default)s)")
    up.add_argument("--listen-host", default="127.0.0.1",
                    help="address every process binds (default %(default)s: this machine only)")
    up.add_argument("--no-auth", action="store_true",
                    help="do not generate tokens: any client that reaches a port may call every RPC")
    up.add_argument("--tls-cert", help="PEM certificate every process serves and dials with (SAN: the listen host)")
    up.add_argument("--tls-key", help="PEM private key of --tls-cert")
    up.add_argument("--tls-ca", help="PEM CA every process checks its peers against")
    up.add_argument("--tls-client-auth", action="store_true", help="mutual TLS: require client certificates")
    up.add_argument("--prometheus", action="store_true",
                    help="also run a local Prometheus (binary `prometheus`) scraping every process, with the "
                    "rules of deploy/prometheus; its data goes under the run dir")

    drain = sub.add_parser("drain", help="run drain_all_pages once on a running cluster")
    drain.add_argument("--strategy", choices=sorted(STRATEGIES), required=True)
    drain.add_argument("--force-all-cpus", action="store_true", help="drain every CPU, not only those with pages")
    drain.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_target(drain)

    for name, help_ in (("cma-alloc", "alloc_contig_range on a running cluster: isolate the range, drain "
                         "(zone-specific, waits for a running drain), take it out of the buddy"),
                        ("offline", "offline_pages on a running cluster: zone_pcp_disable (high 0, batch 1, "
                         "drain forced on every CPU), take the range out of the buddy, zone_pcp_enable")):
        c = sub.add_parser(name, help=help_)
        c.add_argument("--pages", type=_positive_int, required=True,
                       help="range size in pages, a multiple of the pageblock (512)")
        c.add_argument("--start-pfn", type=_positive_int, help="first pfn, pageblock aligned (default: the last "
                       "--pages pages of the zone)")
        c.add_argument("--timeout-ms", type=_positive_int, default=5000,
                       help="how long pages in use may keep the range busy (default %(default)s)")
        c.add_argument("--json", action="store_true", help="print the result as JSON")
        _add_target(c)
    cpu = sub.add_parser("cpu", help="CPU hotplug on a running cluster: offline stops the CPU's tasks, drains "
                         "its lists from the coordinator and recomputes high; online recomputes it again")
    cpu.add_argument("action", choices=["offline", "online"])
    cpu.add_argument("cpu", type=_nonnegative_int, metavar="N")
    _add_target(cpu)
    rel = sub.add_parser("release", help="give a range taken by cma-alloc or offline back to the buddy")
    rel.add_argument("--start-pfn", type=_positive_int, required=True)
    rel.add_argument("--pages", type=_positive_int, required=True)
    _add_target(rel)

    state = sub.add_parser("state", help="per-CPU pcp lists, zone free pages per order, audit verdict")
    state.add_argument("--json", action="store_true")
    state.add_argument("--no-audit", action="store_true", help="skip the stop-the-world audit")
    _add_target(state)

    audit = sub.add_parser("audit", help="stop the world and check that every page is in exactly one place")
    _add_target(audit)

    cmp_ = sub.add_parser("compare", help="run the same workload under each strategy and compare")
    cmp_.add_argument("--quick", action="store_true", help="25 s of measurement per phase instead of 60 s")
    cmp_.add_argument("--seed", type=int, default=1)
    cmp_.add_argument("--json", metavar="PATH",
                      help="write the full results here, and plots next to it (PATH-wakeup.png, PATH-drain.png)")
    cmp_.add_argument("--measure-s", type=_positive_int, help="seconds of measurement per phase")
    cmp_.add_argument("--drain-interval-ms", type=_positive_int, default=150,
                      help="drain schedule period (default %(default)s)")
    cmp_.add_argument("--run-dir", help="where each phase's process logs go (default: a temp dir)")
    cmp_.add_argument("--strategies", type=_strategy_list,
                      help="comma-separated strategies to compare, each a phase (default "
                      f"{','.join(compare.DEFAULT_STRATEGIES)}, or those the kernel allows; known: "
                      f"{','.join(STRATEGIES)})")
    cmp_.add_argument("--kernel", choices=sorted(profiles.PROFILES), default=profiles.DEFAULT_KERNEL,
                      help="kernel profile every phase's CPUs run (default %(default)s)")
    cmp_.add_argument("--trigger-mix", type=_trigger_mix, default=(("demand", 1.0),),
                      help="what each scheduled event is, by weight: demand (drain_all_pages), cma "
                      "(alloc_contig_range of a pageblock) or offline (offline_pages), e.g. demand=1,cma=1 "
                      "(default demand=1); cma=1 is CMA allocations on a busy machine")

    rep = sub.add_parser("report", help="oslat-, cyclictest- and osnoise-style tables and plots from a "
                         "`compare --json` results file",
                         description="Print the wake-up latency histogram per latency CPU and phase (oslat), one "
                         "cyclictest summary line per latency task and phase, and per-CPU noise by cause "
                         "(rtla osnoise top); write PNG plots of the wake-up latency and drain_all_pages "
                         "duration distributions. Latencies are shown in kernel us (wall / time_scale).")
    rep.add_argument("results", metavar="RESULTS.json", help="file written by `pcpsim compare --json`")
    rep.add_argument("--out", metavar="DIR",
                     help="where the plots go (default: next to RESULTS.json, named after it)")
    rep.add_argument("--no-plots", action="store_true", help="print the tables only")

    ben = sub.add_parser("bench", help="measure pcpsim against the floor of Python, gRPC and the machine",
                         description="Measure, in one run, each figure against its floor and print figure, "
                         "floor, ratio and target (ok or MISSED). Exits 0 even when a target is missed.")
    ben.add_argument("--quick", action="store_true", help="fewer samples and CPUs (N up to 8); under 3 minutes")
    ben.add_argument("--json", metavar="PATH",
                     help="write the figures (name, value, floor, ratio, target, ok) and raw data here, "
                     "and the scaling plot next to it (PATH-scaling.png)")
    ben.add_argument("--run-dir", help="where the clusters' process logs go (default: a temp dir)")

    chaos = sub.add_parser("chaos", help="scripted faults against a local cluster, and a checker of the history")
    chsub = chaos.add_subparsers(dest="chaos_command", required=True, metavar="ACTION")
    crun = chsub.add_parser("run", help="run scenario files (deploy/chaos/*.toml) against each of their strategies",
                            description="Run each scenario on a fresh local cluster for each strategy it names "
                            "(or --strategy), write each run's directory (history, logs, metrics, verdict) and "
                            "print the verdicts. Exit 0: all valid; 1: some run invalid; 2: some unknown.")
    crun.add_argument("files", nargs="+", metavar="FILE")
    crun.add_argument("--strategy", choices=sorted(STRATEGIES), help="this strategy only")
    crun.add_argument("--seed", type=int, help="override every scenario's seed")
    crun.add_argument("--out", default=".pcpsim/chaos", help="where run directories go (default %(default)s)")
    ccheck = chsub.add_parser("check", help="check the history of a past run again",
                              description="Re-run the checker on RUN_DIR/history.jsonl. Exit 0 valid, 1 invalid, "
                              "2 unknown.")
    ccheck.add_argument("run_dir", metavar="RUN_DIR")

    tok = sub.add_parser("tokens", help="write fresh token files (coordinator, node, operator) for a deployment",
                         description="Generate the node and operator secrets into DIR/coordinator.token, "
                         "DIR/node.token (the operator secret only as its SHA-256) and DIR/operator.token, "
                         "mode 0600. No secret is printed. `cluster up` does this by itself.")
    tok.add_argument("dir", metavar="DIR")
    return p


def coordinator_address(args) -> str:
    if args.coordinator:
        return args.coordinator
    try:
        with open(args.state) as f:
            return json.load(f)["coordinator"]
    except FileNotFoundError:
        raise CliError(f"no cluster state file at {args.state}: start one with `pcpsim cluster up`, "
                       "or pass --coordinator HOST:PORT") from None
    except (ValueError, KeyError) as err:
        raise CliError(f"state file {args.state} is not valid: {err}") from None


def _state_file(args) -> dict:
    try:
        with open(args.state) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}
    except ValueError as err:
        raise CliError(f"state file {args.state} is not valid: {err}") from None


def client_security(args) -> security.Security:
    """The operator's credentials: flags and $PCPSIM_TOKEN_FILE/TLS variables first, else what
    the state file names."""
    doc = _state_file(args) if not args.coordinator else {}
    tls = doc.get("tls") or {}
    token_file = args.token_file or doc.get("token_file")
    try:
        sec = security.load_token_file(token_file, security.OPERATOR) if token_file else security.INSECURE
        return dataclasses.replace(sec, tls=security.load_tls(
            args.tls_cert or tls.get("cert"), args.tls_key or tls.get("key"), args.tls_ca or tls.get("ca"), False))
    except security.SecurityError as err:
        raise CliError(str(err)) from None


def _stub(args):
    args.security = client_security(args)
    channel = security.channel(coordinator_address(args), args.security)
    return channel, pb_grpc.CoordinatorStub(channel)


def kus(seconds: float, scale: float) -> str:
    return f"{seconds * 1e3:.2f} ms ({seconds / scale * 1e6:.1f} us kernel)"


# ------------------------------------------------------------------ commands
def cmd_cluster_up(args) -> int:
    try:
        isolated = parse_cpu_list(args.isolated, args.nodes)
        rt = parse_cpu_list(args.rt, args.nodes)
        roles = assign_roles(args.nodes, isolated, rt)
    except ValueError as err:
        raise CliError(str(err)) from None
    if args.prometheus:  # before starting anything
        try:
            prometheus.find_binary()
        except prometheus.PrometheusError as err:
            raise CliError(str(err)) from None
    run_dir = args.run_dir or os.path.join(".pcpsim", time.strftime("run-%Y%m%d-%H%M%S"))
    os.makedirs(os.path.dirname(os.path.abspath(args.state)), exist_ok=True)
    tls = None
    if args.tls_cert or args.tls_key or args.tls_ca or args.tls_client_auth:
        try:  # refuse bad files before starting anything
            security.load_tls(args.tls_cert, args.tls_key, args.tls_ca, args.tls_client_auth)
        except security.SecurityError as err:
            raise CliError(str(err)) from None
        if not (args.tls_cert and args.tls_ca):
            raise CliError("cluster up with TLS needs --tls-cert, --tls-key and --tls-ca (every process "
                           "serves and dials)")
        tls = TlsPaths(*(os.path.abspath(x) for x in (args.tls_cert, args.tls_key, args.tls_ca)),
                       args.tls_client_auth)
    try:
        config = ClusterConfig(roles=roles, seed=args.seed, strategy=args.strategy, zone_mb=args.zone_mb,
                               zone_used=args.zone_used, kernel=args.kernel, listen_host=args.listen_host,
                               auth=not args.no_auth, tls=tls)
        security.warn(security.exposure_warning(join_host_port(config.listen_host, 0), tls is not None, config.auth))
    except ValueError as err:
        raise CliError(f"--listen-host: {err}") from None
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    cluster = LocalCluster(config, run_dir, state_file=args.state)
    prom = None
    try:
        cluster.start()
        if args.prometheus:
            prom = prometheus.LocalPrometheus(run_dir, prometheus.targets_file(args.state),
                                              port=prometheus.DEFAULT_PORT)
            prom.start()
        state = cluster.state()
        print(f"coordinator  {cluster.coordinator_address}")
        for node in state.nodes:
            print(f"cpu{node.cpu:<3}       {node.address:<22} {pb.Role.Name(node.role)}")
        print(f"zone: {state.zone.spanned_pages} pages, batch {state.batch}, high {state.high}; "
              f"logs in {run_dir}; state in {args.state}")
        print("authentication: " + (f"on (operator token file {cluster.token_files['operator']})"
                                    if cluster.token_files else "OFF (--no-auth)")
              + "; TLS: " + ("mutual" if tls and tls.client_auth else "on" if tls else "off"))
        if prom is not None:
            print(f"prometheus   {prom.url}  (config {prom.config_file}, log {prom.log_file})")
        print("Ctrl-C stops the cluster.", flush=True)
        while not stop:
            for name, proc in cluster.procs.items():
                if proc.poll() is not None:
                    raise CliError(f"{name} exited with {proc.returncode}; see {run_dir}/{name}.log")
            if prom is not None and prom.proc.poll() is not None:
                raise CliError(f"prometheus exited with {prom.proc.returncode}; see {prom.log_file}")
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    except (ClusterError, prometheus.PrometheusError) as err:
        raise CliError(str(err)) from None
    finally:
        if prom is not None:
            prom.stop()
        cluster.stop()
        print("cluster stopped", flush=True)
    return 0


def cmd_drain(args) -> int:
    channel, stub = _stub(args)
    with channel:
        r = stub.DrainAllPages(pb.DrainAllRequest(strategy=STRATEGIES[args.strategy],
                                                  force_all_cpus=args.force_all_cpus,
                                                  trigger=pb.TRIGGER_DEMAND), timeout=120.0)
        scale = stub.GetState(pb.Empty(), timeout=10.0).time_scale
    if args.json:
        print(json.dumps({"status": pb.DrainAllReply.Status.Name(r.status),
                          "strategy": STRATEGY_NAMES[r.strategy], "duration_s": r.duration_s,
                          "cpus": [{"cpu": c.cpu, "pages": c.pages, "duration_s": c.duration_s,
                                    "wait_s": c.wait_s, "ok": c.ok, "error": c.error} for c in r.cpus]},
                         indent=2))
    else:
        print(f"drain_all_pages ({STRATEGY_NAMES[r.strategy]}, {TRIGGER_NAMES[r.trigger]}): "
              f"{pb.DrainAllReply.Status.Name(r.status)} in {kus(r.duration_s, scale)}, "
              f"CPUs marked {list(r.cpus_marked)}")
        for c in r.cpus:
            print(f"  cpu{c.cpu}: {c.pages:5d} pages  done at {kus(c.duration_s, scale)}  "
                  f"waited {kus(c.wait_s, scale)}" + ("" if c.ok else f"  FAILED: {c.error}"))
    return 0 if r.status == pb.DrainAllReply.DONE else 1


def cmd_contig(args) -> int:
    channel, stub = _stub(args)
    request = pb.ContigRangeRequest(start_pfn=args.start_pfn or 0, nr_pages=args.pages, timeout_ms=args.timeout_ms)
    with channel:
        call = stub.AllocContigRange if args.command == "cma-alloc" else stub.OfflinePages
        r = call(request, timeout=args.timeout_ms / 1000.0 + 120.0)
        scale = stub.GetState(pb.Empty(), timeout=10.0).time_scale
    drains = [{"status": pb.DrainAllReply.Status.Name(d.status), "trigger": TRIGGER_NAMES[d.trigger],
               "strategy": STRATEGY_NAMES[d.strategy], "duration_s": d.duration_s,
               "cpus_marked": list(d.cpus_marked), "pages": sum(c.pages for c in d.cpus)} for d in r.drains]
    if args.json:
        print(json.dumps({"ok": r.ok, "start_pfn": r.start_pfn, "nr_pages": r.nr_pages, "duration_s": r.duration_s,
                          "attempts": r.attempts, "busy_pfn": r.busy_pfn, "error": r.error, "drains": drains},
                         indent=2))
    else:
        print(f"{args.command} [{r.start_pfn}, {r.start_pfn + r.nr_pages}): {'ok' if r.ok else 'FAILED'} in "
              f"{kus(r.duration_s, scale)} after {r.attempts} attempt(s)" + ("" if r.ok else f": {r.error}"))
        for d in drains:
            print(f"  drain_all_pages ({d['strategy']}, {d['trigger']}): {d['status']} in "
                  f"{kus(d['duration_s'], scale)}, CPUs marked {d['cpus_marked']}, {d['pages']} pages")
    return 0 if r.ok else 1


def cmd_cpu(args) -> int:
    channel, stub = _stub(args)
    with channel:
        r = stub.SetCpuOnline(pb.CpuOnlineRequest(cpu=args.cpu, online=args.action == "online"), timeout=120.0)
        scale = stub.GetState(pb.Empty(), timeout=10.0).time_scale
    print(f"cpu{args.cpu} {args.action}: {r.online_cpus} CPUs online, high {r.high}, batch {r.batch}")
    if r.HasField("drain"):
        d = r.drain
        print(f"  drain_pages(cpu{args.cpu}) ({STRATEGY_NAMES[d.strategy]}, {TRIGGER_NAMES[d.trigger]}): "
              f"{pb.DrainAllReply.Status.Name(d.status)} in {kus(d.duration_s, scale)}, "
              f"{sum(c.pages for c in d.cpus)} pages" + "".join(f"  FAILED: {c.error}" for c in d.cpus if not c.ok))
        return 0 if d.status == pb.DrainAllReply.DONE else 1
    return 0


def cmd_release(args) -> int:
    channel, stub = _stub(args)
    with channel:
        r = stub.ReleaseRange(pb.ReleaseRangeRequest(start_pfn=args.start_pfn, nr_pages=args.pages), timeout=30.0)
    print(f"released {r.owner} range [{args.start_pfn}, {args.start_pfn + args.pages}); "
          f"zone free pages {r.free_pages}")
    return 0


def _list_label(pindex: int) -> str:
    order = pindex_to_order(pindex)
    if pindex >= MIGRATE_PCPTYPES * 4:
        return f"thp(o{order})"
    return f"o{order}:{MIGRATETYPE_NAMES[pindex % MIGRATE_PCPTYPES][:3]}"


def cmd_state(args) -> int:
    channel, stub = _stub(args)
    with channel:
        state = stub.GetState(pb.Empty(), timeout=10.0)
        pcps = {}
        for node in state.nodes:
            if node.up:
                with security.channel(node.address, args.security) as nch:
                    pcps[node.cpu] = pb_grpc.NodeStub(nch).GetPcp(pb.CpuRequest(cpu=node.cpu), timeout=5.0)
        audit = None if args.no_audit else stub.Audit(pb.Empty(), timeout=60.0)
    z = state.zone
    if args.json:
        print(json.dumps({
            "zone": {"free_pages": z.free_pages, "managed_pages": z.managed_pages,
                     "watermark": {"min": z.watermark_min, "low": z.watermark_low, "high": z.watermark_high},
                     "nr_free": list(z.nr_free), "reclaim_active": z.reclaim_active},
            "cpus": [{"cpu": n.cpu, "role": pb.Role.Name(n.role), "up": n.up,
                      **({"count": pcps[n.cpu].count, "high": pcps[n.cpu].high, "batch": pcps[n.cpu].batch,
                          "free_factor": pcps[n.cpu].free_factor, "lists": list(pcps[n.cpu].list_pages)}
                         if n.cpu in pcps else {})} for n in state.nodes],
            "audit": None if audit is None else {"ok": audit.ok, "lost": audit.lost,
                                                 "duplicated": audit.duplicated, "errors": list(audit.errors)},
        }, indent=2))
        return 0 if audit is None or audit.ok else 1
    print(f"zone: {z.free_pages}/{z.managed_pages} pages free; watermarks min {z.watermark_min} "
          f"low {z.watermark_low} high {z.watermark_high}; reclaim_active {z.reclaim_active}")
    print("free blocks per order: " + " ".join(f"{o}:{n}" for o, n in enumerate(z.nr_free)))
    print(f"{'cpu':>4} {'role':<26} {'count':>6} {'high':>5} {'batch':>5} {'ff':>3}  "
          + " ".join(f"{_list_label(i):>7}" for i in range(NR_PCP_LISTS)))
    for n in state.nodes:
        p = pcps.get(n.cpu)
        if p is None:
            print(f"{n.cpu:>4} {pb.Role.Name(n.role):<26} DOWN (heartbeat {n.heartbeat_age_s:.1f}s ago)")
            continue
        print(f"{n.cpu:>4} {pb.Role.Name(n.role):<26} {p.count:>6} {p.high:>5} {p.batch:>5} "
              f"{p.free_factor:>3}  " + " ".join(f"{x:>7}" for x in p.list_pages))
    if audit is not None:
        _print_audit(audit)
        return 0 if audit.ok else 1
    return 0


def _print_audit(audit) -> None:
    verdict = "ok" if audit.ok else "FAILED"
    print(f"audit {verdict}: {audit.total_pages} pages; lost {audit.lost}, duplicated {audit.duplicated}, "
          f"unexpected {audit.unexpected}; " + ", ".join(f"{k} {v}" for k, v in sorted(audit.where.items())))
    for e in audit.errors:
        print(f"  {e}")


def cmd_audit(args) -> int:
    channel, stub = _stub(args)
    with channel:
        audit = stub.Audit(pb.Empty(), timeout=60.0)
    _print_audit(audit)
    return 0 if audit.ok else 1


def cmd_compare(args) -> int:
    measure_s = args.measure_s or (compare.QUICK_MEASURE_S if args.quick else compare.FULL_MEASURE_S)
    try:
        config = compare.CompareConfig(seed=args.seed, measure_s=float(measure_s),
                                       drain_interval_s=args.drain_interval_ms / 1000.0, kernel=args.kernel,
                                       trigger_mix=args.trigger_mix,
                                       strategies=args.strategies or compare.default_strategies(args.kernel))
    except ValueError as err:
        raise CliError(str(err)) from None
    try:
        result = compare.run_compare(config, args.run_dir)
    except ClusterError as err:
        raise CliError(str(err)) from None
    print(compare.format_table(result))
    if args.json:
        compare.write_json(result, args.json)
        print(f"results written to {args.json}")
        print("plots written to " + ", ".join(plots.write_plots(result, args.json)))
    return 0 if all(s["audit"]["ok"] for s in result["strategies"].values()) else 1


def cmd_report(args) -> int:
    try:
        result = report.load_results(args.results)
    except report.ReportError as err:
        raise CliError(str(err)) from None
    print(report.format_report(result))
    if not args.no_plots:
        try:
            written = plots.write_plots(result, args.results, args.out)
        except OSError as err:
            raise CliError(f"cannot write plots: {err}") from None
        print("\nplots written to " + ", ".join(written))
    return 0


def cmd_bench(args) -> int:
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    plot = (os.path.splitext(args.json)[0] + "-scaling.png") if args.json else None
    try:
        result = bench.run_bench(args.quick, args.run_dir, plot)
    except ClusterError as err:
        raise CliError(str(err)) from None
    if args.json:  # before printing: a reader that closes stdout early (| head) must not lose the results
        bench_figure.write_json(result, args.json)
    print(bench_figure.format_table(result["figures"]))
    if args.json:
        print(f"results written to {args.json}; scaling plot {plot}")
    return 0


def cmd_tokens(args) -> int:
    if os.path.exists(os.path.join(args.dir, "operator.token")):
        raise CliError(f"{args.dir} already holds token files: remove them first")
    try:
        paths = security.generate_token_files(args.dir)
    except OSError as err:
        raise CliError(f"cannot write token files: {err}") from None
    for kind, path in sorted(paths.items()):
        print(f"{kind:<12} {path}")
    return 0


def cmd_chaos(args) -> int:
    from coordinator.tools.chaos import checker, history, runner, scenario
    if args.chaos_command == "check":
        path = os.path.join(args.run_dir, "history.jsonl")
        try:
            entries = history.read(path)
        except (OSError, ValueError) as err:
            raise CliError(f"cannot read {path}: {err}") from None
        meta = next((e for e in entries if e["type"] == "meta"), None)
        if meta is None:
            raise CliError(f"{path} has no run description (meta entry)")
        verdict = checker.check(entries, meta["bound_s"], meta["lease_s"])
        print(json.dumps(verdict.to_json(), indent=2))
        return verdict.exit_code
    try:  # every file is validated before anything runs
        scenarios = [scenario.load(f) for f in args.files]
    except scenario.ScenarioError as err:
        raise CliError(str(err)) from None
    verdicts = []
    for sc in scenarios:
        for strategy in ([args.strategy] if args.strategy else sc.strategies):
            try:
                v = runner.run(sc, strategy, args.out, seed=args.seed)
            except ClusterError as err:
                raise CliError(f"{sc.name}/{strategy}: {err}") from None
            verdicts.append((sc.name, strategy, v))
    print(f"{'scenario':<28} {'strategy':<10} valid    drains ok/fail/info  lost dup stale")
    for name, strategy, v in verdicts:
        d, a = v.stats.get("drains", {}), v.stats.get("audit") or {}
        st = v.stats.get("stale_commits", {})
        print(f"{name:<28} {strategy:<10} {str(v.valid).lower():<8} "
              f"{d.get('ok', 0):>6}/{d.get('fail', 0)}/{d.get('info', 0):<9} "
              f"{a.get('lost', '?'):>5} {a.get('duplicated', '?'):>3} {st.get('applied', '?'):>5}")
    print(f"run directories under {args.out}")
    codes = [v.exit_code for _, _, v in verdicts]
    return 1 if 1 in codes else 2 if 2 in codes else 0


COMMANDS = {"tokens": cmd_tokens, "drain": cmd_drain, "state": cmd_state, "audit": cmd_audit, "compare": cmd_compare,
            "cma-alloc": cmd_contig, "offline": cmd_contig, "release": cmd_release, "cpu": cmd_cpu,
            "report": cmd_report, "bench": cmd_bench, "chaos": cmd_chaos}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "cluster":
            return cmd_cluster_up(args)
        return COMMANDS[args.command](args)
    except CliError as err:
        print(f"pcpsim: error: {err}", file=sys.stderr)
        return 2
    except grpc.RpcError as err:
        print(f"pcpsim: error: the cluster answered {err.code().name}: {err.details()}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
