"""Figure 6 of `pcpsim bench`: many CPUs and a coordinator on this machine, drained every second.

A cluster of N CPUs laid out as on a nohz_full machine (one in sixteen housekeeping, one
in eight running the preemptible latency task, the other isolated CPUs idle; default time
scale) runs for a window in which, every second, drain_all_pages runs once in each
strategy over the CPUs with pages on their pcp lists (the kernel's cpus_with_pcps, from
the heartbeats' counts). Meanwhile membership is polled: every node must stay up
throughout (heartbeat age under the coordinator's failure timeout at every poll). At the
end: every drain the bench asked for is DONE with every CPU's drain ok, in its reply and
in the coordinator's DrainHistory, and no drain of any trigger FAILED; the audit balances
to the page; the median node RSS (VmRSS) is within the issue's 60 MB budget; the
coordinator's CPU time (utime + stime) over the window is reported as a share of one core.
"""

import os
import statistics
import threading
import time

import grpc

from coordinator.tools.bench.figure import RSS_BUDGET_BYTES, Figure, log
from coordinator.tools.cluster import ClusterConfig, LocalCluster
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.shared import security

FULL = (64, 60.0)  # CPUs, seconds
QUICK = (16, 10.0)
POLL_S = 0.25
WARMUP_S = 5.0
STRATEGIES = (("workqueue", pb.STRATEGY_WORKQUEUE), ("remote", pb.STRATEGY_REMOTE))


def scale_roles(n: int) -> list[str]:
    """A nohz_full machine's layout: one housekeeping CPU in sixteen (at least one), one CPU in eight
    running the preemptible latency task (at least one), the other isolated CPUs idle."""
    if n < 2:
        raise ValueError(f"a scale run needs at least 2 CPUs, got {n}")
    hk = max(1, n // 16)
    iso = max(1, min(n - hk, n // 8))
    return ["housekeeping"] * hk + ["isolated-preemptible"] * iso + ["idle"] * (n - hk - iso)


def vm_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (/proc/PID/stat fields 14 and 15), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _MembershipWatch(threading.Thread):
    """Polls GetState: how many (poll, node) observations found the node up, and the oldest heartbeat seen."""

    def __init__(self, address: str, sec, n: int):
        super().__init__(name="bench-membership", daemon=True)
        self.address, self.sec, self.n = address, sec, n
        self.observations = self.up = self.poll_errors = 0
        self.max_age_s = 0.0
        self.max_age_at_s = 0.0  # when in the window the oldest heartbeat was seen
        self.down: set[int] = set()  # CPUs seen not up
        self._stopping = threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        with security.channel(self.address, self.sec) as ch:
            stub = pb_grpc.CoordinatorStub(ch)
            while not self._stopping.wait(POLL_S):
                try:
                    nodes = stub.GetState(pb.Empty(), timeout=5.0).nodes
                except grpc.RpcError:
                    self.poll_errors += 1
                    continue
                self.observations += self.n
                for node in nodes:
                    self.up += node.up
                    if node.heartbeat_age_s > self.max_age_s:
                        self.max_age_s, self.max_age_at_s = node.heartbeat_age_s, time.monotonic() - t0
                    if not node.up:
                        self.down.add(node.cpu)
                self.down.update(set(range(self.n)) - {node.cpu for node in nodes})

    def stop(self) -> None:
        self._stopping.set()
        self.join(10.0)


def _drain_ok(reply) -> bool:
    return reply.status == pb.DrainAllReply.DONE and all(c.ok for c in reply.cpus)


def _drain_loop(stub, duration_s: float) -> list[dict]:
    """Every second, one drain per strategy; returns what each reply said. A second whose drains
    overrun it delays the next (counted as slipped), so every drain asked for still runs."""
    done = []
    start = time.monotonic()
    for second in range(int(duration_s)):
        while time.monotonic() < start + second:
            time.sleep(0.01)
        for name, strategy in STRATEGIES:
            t0 = time.monotonic()
            try:
                r = stub.DrainAllPages(pb.DrainAllRequest(strategy=strategy, trigger=pb.TRIGGER_DEMAND), timeout=30.0)
                status, ok, dur = pb.DrainAllReply.Status.Name(r.status), _drain_ok(r), r.duration_s
                cpus, pages = len(r.cpus), sum(c.pages for c in r.cpus)
            except grpc.RpcError as err:
                status, ok, dur, cpus, pages = f"RPC {err.code().name}", False, time.monotonic() - t0, 0, 0
            done.append(
                {
                    "strategy": name,
                    "status": status,
                    "ok": ok,
                    "duration_s": dur,
                    "cpus": cpus,
                    "pages": pages,
                    "slipped": time.monotonic() > start + second + 1,
                }
            )
    while time.monotonic() < start + duration_s:
        time.sleep(0.01)
    return done


def bench_scale(quick: bool, run_dir: str) -> tuple[list[Figure], dict]:
    n, duration_s = QUICK if quick else FULL
    roles = scale_roles(n)
    cluster = LocalCluster(ClusterConfig(roles=roles), os.path.join(run_dir, f"scale-{n}"))
    t0 = time.monotonic()
    try:
        cluster.start(timeout=120.0 + 3.0 * n)  # 64 interpreters start on 2 cores
        log(f"scale: {n} CPUs up in {time.monotonic() - t0:.0f}s; {WARMUP_S:g}s to settle, {duration_s:g}s of drains")
        coord_pid = cluster.procs["coordinator"].pid
        node_pids = [p.pid for name, p in cluster.procs.items() if name != "coordinator"]
        with security.channel(cluster.coordinator_address, cluster.security) as ch:
            stub = pb_grpc.CoordinatorStub(ch)
            # Settle past start-up (registrations, high recomputed, first refills), and drain every CPU
            # once in each strategy: the coordinator's channels and control streams to the nodes open
            # on first use, which is start-up too.
            settle_until = time.monotonic() + WARMUP_S
            for _, strategy in STRATEGIES:
                stub.DrainAllPages(
                    pb.DrainAllRequest(strategy=strategy, force_all_cpus=True, trigger=pb.TRIGGER_DEMAND), timeout=60.0
                )
            while time.monotonic() < settle_until:
                time.sleep(0.05)
            stub.GetDrainHistory(pb.DrainHistoryRequest(reset=True), timeout=10.0)
            watch = _MembershipWatch(cluster.coordinator_address, cluster.security, n)
            cpu0, w0 = cpu_seconds(coord_pid), time.monotonic()
            node_cpu0 = [cpu_seconds(pid) for pid in node_pids]
            watch.start()
            try:
                drains = _drain_loop(stub, duration_s)
            finally:
                watch.stop()
            coord_cpu_s, window_s = cpu_seconds(coord_pid) - cpu0, time.monotonic() - w0
            node_cpu_s = [cpu_seconds(pid) - c for pid, c in zip(node_pids, node_cpu0, strict=True)]
            node_rss = [vm_rss_bytes(pid) for pid in node_pids]
            coord_rss = vm_rss_bytes(coord_pid)
            history = stub.GetDrainHistory(pb.DrainHistoryRequest(), timeout=30.0).drains
            audit = stub.Audit(pb.Empty(), timeout=120.0)
    finally:
        cluster.stop()
    asked = [d for d in history if d.trigger == pb.TRIGGER_DEMAND]
    recorded_ok = sum(1 for d in asked if _drain_ok(d))
    failed_any = sum(1 for d in history if d.status == pb.DrainAllReply.FAILED)
    replies_ok = sum(d["ok"] for d in drains)
    # Every drain the bench asked for must have completed by its reply and by the coordinator's record.
    completed = min(replies_ok, recorded_ok) if failed_any == 0 else 0
    # A failed audit (lost, duplicated or misattributed pages) balances at least one page short.
    balanced = (
        audit.total_pages if audit.ok else audit.total_pages - max(1, audit.lost + audit.duplicated + audit.unexpected)
    )
    median_rss = statistics.median(node_rss)
    by_strategy = {name: [d["duration_s"] for d in drains if d["strategy"] == name] for name, _ in STRATEGIES}
    medians = ", ".join(
        f"{k} median {statistics.median(v) * 1e3:.0f} ms, max {max(v) * 1e3:.0f} ms" for k, v in by_strategy.items()
    )
    slipped = sum(d["slipped"] for d in drains)
    role_cpu = {
        role: statistics.median(c / window_s for c, r in zip(node_cpu_s, roles, strict=True) if r == role)
        for role in sorted(set(roles))
    }
    where = f"{n} CPUs ({roles.count('housekeeping')} housekeeping) for {window_s:.0f}s on {os.cpu_count()} cores"
    figs = [
        Figure(
            "scale: node-polls up / node-polls",
            watch.up,
            watch.observations,
            "",
            ">= 1",
            f"{where}; GetState every {POLL_S:g}s; oldest heartbeat seen "
            f"{watch.max_age_s * 1e3:.0f} ms ({watch.max_age_at_s:.0f}s in)"
            + (f"; CPUs seen down: {sorted(watch.down)}" if watch.down else "")
            + (f"; {watch.poll_errors} polls failed" if watch.poll_errors else ""),
        ),
        Figure(
            "scale: drains completed / drains asked",
            completed,
            len(drains),
            "",
            ">= 1",
            f"cpus_with_pcps, one per strategy per second ({slipped} finished past their second); "
            f"{replies_ok} replies DONE with every CPU ok, {recorded_ok} in DrainHistory, {failed_any} FAILED "
            f"of any trigger; median {statistics.median(d['cpus'] for d in drains):.0f} CPUs and "
            f"{statistics.median(d['pages'] for d in drains):.0f} pages per drain; {medians}",
        ),
        Figure(
            "scale: audit pages balanced / zone pages",
            balanced,
            audit.total_pages,
            "",
            ">= 1",
            f"audit {'ok' if audit.ok else 'FAILED'}: lost {audit.lost}, duplicated {audit.duplicated}, "
            f"unexpected {audit.unexpected}" + (f"; {list(audit.errors[:3])}" if audit.errors else ""),
        ),
        Figure(
            "scale: median node RSS vs 60 MB budget",
            median_rss,
            RSS_BUDGET_BYTES,
            "B",
            "<= 1",
            f"VmRSS of {len(node_rss)} node processes: min {min(node_rss) / 2**20:.1f} MB, "
            f"max {max(node_rss) / 2**20:.1f} MB; coordinator {coord_rss / 2**20:.1f} MB",
        ),
        Figure(
            "scale: coordinator CPU time / wall time",
            coord_cpu_s,
            window_s,
            "s",
            None,
            "utime + stime of the coordinator over the window (1.0 = one core busy); median node, by role: "
            + ", ".join(f"{r} {c:.3f}" for r, c in role_cpu.items()),
        ),
    ]
    detail = {
        "n": n,
        "roles": roles,
        "window_s": window_s,
        "drains": drains,
        "membership": {
            "observations": watch.observations,
            "up": watch.up,
            "max_heartbeat_age_s": watch.max_age_s,
            "max_heartbeat_age_at_s": watch.max_age_at_s,
            "down_cpus": sorted(watch.down),
            "poll_errors": watch.poll_errors,
        },
        "history": {"demand": len(asked), "demand_done_all_cpus": recorded_ok, "failed_any": failed_any},
        "audit": {
            "ok": audit.ok,
            "total_pages": audit.total_pages,
            "lost": audit.lost,
            "duplicated": audit.duplicated,
            "unexpected": audit.unexpected,
            "errors": list(audit.errors),
        },
        "node_rss_bytes": node_rss,
        "coordinator_rss_bytes": coord_rss,
        "coordinator_cpu_s": coord_cpu_s,
        "node_cpu_s": node_cpu_s,
        "median_node_cpu_share_by_role": role_cpu,
    }
    return figs, detail
