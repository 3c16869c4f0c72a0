"""`pcpsim cluster up` (a local cluster, and Prometheus, until Ctrl-C) and `pcpsim tokens`."""

import os
import signal
import time

import grpc

from coordinator.tools import prometheus
from coordinator.tools.cli import connect, paths
from coordinator.tools.cli.errors import CliError
from coordinator.tools.cluster import ClusterConfig, ClusterError, LocalCluster, TlsPaths
from coordinator.tools.topology import DEFAULT_ISOLATED, DEFAULT_NODES, DEFAULT_RT, assign_roles, workload_roles
from node import rtapp
from node.api.v1 import pcpsim_pb2 as pb
from node.shared import security
from node.shared.config import join_host_port
from node.shared.cpulist import parse_cpu_list


def topology(args) -> tuple[int, str, str]:
    """(CPUs, isolated list, RT list): the flags, or, when none of --nodes, --isolated and --rt is
    given, the default layout (compare's, so every dashboard panel and rule has data). A layout is
    given whole: `--nodes 2` alone is two housekeeping CPUs."""
    if args.nodes is None and args.isolated is None and args.rt is None:
        return DEFAULT_NODES, DEFAULT_ISOLATED, DEFAULT_RT
    return args.nodes or DEFAULT_NODES, args.isolated or "", args.rt or ""


def roles_of(args) -> list[str]:
    """Each CPU's role: from the task set (--workload, with --nodes if given), else the layout flags."""
    if args.workload is not None:
        if args.isolated is not None or args.rt is not None:
            raise CliError("--workload names the latency CPUs itself: give it without --isolated/--rt")
        try:
            return workload_roles(args.workload, args.nodes)
        except rtapp.WorkloadError as err:
            raise CliError(f"--workload {args.workload.source}: {err}") from None
    nodes, isolated, rt = topology(args)
    try:
        return assign_roles(nodes, parse_cpu_list(isolated, nodes), parse_cpu_list(rt, nodes))
    except ValueError as err:
        raise CliError(str(err)) from None


def _live_coordinator(state: dict | None) -> int | None:
    """The pid of the coordinator a state file names, if that process still runs a coordinator (a
    stale file, its cluster killed, names a pid that is gone or reused by another program)."""
    pids = (state or {}).get("pids")
    pid = pids.get("coordinator") if isinstance(pids, dict) else None
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:  # no such process
        return None
    return pid if b"coordinator" in argv else None


def cmd_cluster_up(args) -> int:
    roles = roles_of(args)
    if args.prometheus:  # before starting anything
        try:
            prometheus.find_binary()
        except prometheus.PrometheusError as err:
            raise CliError(str(err)) from None
    run_dir = args.run_dir or os.path.join(".pcpsim", time.strftime("run-%Y%m%d-%H%M%S"))
    paths.output_dir("--run-dir", run_dir)
    paths.output_file("--state", args.state, make_dirs=True)
    if (pid := _live_coordinator(connect.read_state(args.state))) is not None:
        # Taking the file over would point every command at this cluster, and this cluster's stop
        # would delete the file of the one still running.
        raise CliError(
            f"--state {args.state} is the state file of a cluster still running (coordinator pid {pid}): "
            "stop it first, or give this one another --state"
        )
    os.makedirs(os.path.dirname(os.path.abspath(args.state)), exist_ok=True)
    tls = None
    if args.tls_cert or args.tls_key or args.tls_ca or args.tls_client_auth:
        try:  # refuse bad files before starting anything
            security.load_tls(args.tls_cert, args.tls_key, args.tls_ca, args.tls_client_auth)
        except security.SecurityError as err:
            raise CliError(str(err)) from None
        if not (args.tls_cert and args.tls_ca):
            raise CliError(
                "cluster up with TLS needs --tls-cert, --tls-key and --tls-ca (every process serves and dials)"
            )
        cert, key, ca = (os.path.abspath(x) for x in (args.tls_cert, args.tls_key, args.tls_ca))
        tls = TlsPaths(cert, key, ca, args.tls_client_auth)
    try:
        config = ClusterConfig(
            roles=roles,
            seed=args.seed,
            strategy=args.strategy,
            zone_mb=args.zone_mb,
            zone_used=args.zone_used,
            kernel=args.kernel,
            listen_host=args.listen_host,
            auth=not args.no_auth,
            tls=tls,
            workload=args.workload and args.workload.source,
            cost_model=args.cost_model,
        )
        security.warn(security.exposure_warning(join_host_port(config.listen_host, 0), tls is not None, config.auth))
    except ValueError as err:
        raise CliError(f"--listen-host: {err}") from None
    # SIGTERM and SIGINT (Ctrl-C) only set a flag the wait loop reads. A KeyboardInterrupt can
    # be raised inside Popen.poll() between its waitpid lock's acquire and the try that releases
    # it; the stop below then waits on that lock forever (a SIGINT test under load once hung
    # this way: `cluster up` never printed "cluster stopped").
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))
    cluster = LocalCluster(config, run_dir, state_file=args.state)
    prom = None
    try:
        cluster.start()
        if args.prometheus:
            prom = prometheus.LocalPrometheus(
                run_dir, prometheus.targets_file(args.state), port=prometheus.DEFAULT_PORT
            )
            prom.start()
        state = cluster.ready
        print(f"coordinator  {cluster.coordinator_address}")
        for node in state.nodes:
            print(f"cpu{node.cpu:<3}       {node.address:<22} {pb.Role.Name(node.role)}")
        print(
            f"zone: {state.zone.spanned_pages} pages, batch {state.batch}, high {state.high}; "
            f"logs in {run_dir}; state in {args.state}"
        )
        print(
            "authentication: "
            + (
                f"on (operator token file {cluster.token_files['operator']})"
                if cluster.token_files
                else "OFF (--no-auth)"
            )
            + "; TLS: "
            + ("mutual" if tls and tls.client_auth else "on" if tls else "off")
        )
        if prom is not None:
            print(f"prometheus   {prom.url}  (config {prom.config_file}, log {prom.log_file})")
        print("Ctrl-C stops the cluster.", flush=True)
        addresses = {n.cpu: n.address for n in state.nodes}  # as the state file has them
        rejoining: dict[int, str] = {}  # restarted CPU -> its old address, until it registers anew
        while not stop:
            coordinator = cluster.procs["coordinator"]
            if coordinator.poll() is not None:
                raise CliError(f"coordinator exited with {coordinator.returncode}; see {run_dir}/coordinator.log")
            # A node that exits (a crash, or a chaos experiment's kill) is started again, as the
            # Compose deployment's restart policy does; the state file follows it (pid, then address).
            for cpu, name in sorted(cluster.node_names.items()):
                if cpu not in rejoining and cluster.procs[name].poll() is not None:
                    rejoining[cpu] = addresses[cpu]
            if rejoining:
                _follow_restarts(cluster, rejoining, addresses, args.state)
            if prom is not None and prom.proc is not None and prom.proc.poll() is not None:
                raise CliError(f"prometheus exited with {prom.proc.returncode}; see {prom.log_file}")
            time.sleep(0.2)
    except (ClusterError, prometheus.PrometheusError) as err:
        raise CliError(str(err)) from None
    finally:
        if prom is not None:
            prom.stop()
        cluster.stop()
        print("cluster stopped", flush=True)
    return 0


def _follow_restarts(
    cluster: LocalCluster, rejoining: dict[int, str], addresses: dict[int, str], state_file: str
) -> None:
    """Restart the nodes that exited; rewrite the state file now (their pids) and again once each
    has registered at its new address, which is then no longer waited for."""
    for name in cluster.restart_exited_nodes():
        print(f"{name}: started again (the CPU's process before it exited)", flush=True)
    try:
        nodes = {n.cpu: n for n in cluster.state(timeout=2.0).nodes}
        cluster.write_state(state_file)
    except grpc.RpcError:
        return  # the coordinator is busy or partitioned: next round
    for cpu, old in list(rejoining.items()):
        if nodes[cpu].up and nodes[cpu].address != old:
            addresses[cpu] = nodes[cpu].address
            del rejoining[cpu]


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
