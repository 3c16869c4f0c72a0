"""What a drain reports: the strategies and triggers by name, and one record per drain_all_pages."""

from dataclasses import dataclass, field

from node.api.v1 import pcpsim_pb2 as pb

STRATEGIES: dict[str, pb.Strategy] = {
    "workqueue": pb.STRATEGY_WORKQUEUE,
    "remote": pb.STRATEGY_REMOTE,
    "rcu-swap": pb.STRATEGY_RCU_SWAP,
    "qpw": pb.STRATEGY_QPW,
}
STRATEGY_NAMES = {v: k for k, v in STRATEGIES.items()}
TRIGGER_NAMES: dict[pb.Trigger, str] = {
    pb.TRIGGER_DEMAND: "demand",
    pb.TRIGGER_RECLAIM: "reclaim",
    pb.TRIGGER_ALLOC_CONTIG: "alloc_contig",
    pb.TRIGGER_MEMORY_OFFLINE: "memory_offline",
    pb.TRIGGER_CPU_HOTPLUG: "cpu_hotplug",
}


@dataclass
class CpuDrain:
    """One CPU's part of a drain: pages freed, how long it took and waited, and why it failed."""

    cpu: int
    pages: int = 0
    duration_s: float = 0.0
    wait_s: float = 0.0
    ok: bool = True
    error: str = ""
    grace_period_s: float = 0.0  # rcu-swap only


@dataclass
class DrainRecord:
    status: pb.DrainAllReply.Status
    strategy: pb.Strategy
    trigger: pb.Trigger
    started_at: float
    duration_s: float = 0.0
    cpus_marked: list[int] = field(default_factory=list)
    cpus: list[CpuDrain] = field(default_factory=list)
    mutex_wait_s: float = 0.0

    def settle(self, cpus: list[CpuDrain], now: float, since: float) -> None:
        """Record the per-CPU results: the drain failed if any CPU's part did."""
        self.cpus = cpus
        self.duration_s = now - since
        if not all(c.ok for c in cpus):
            self.status = pb.DrainAllReply.FAILED

    def to_pb(self) -> pb.DrainAllReply:
        return pb.DrainAllReply(
            status=self.status,
            strategy=self.strategy,
            trigger=self.trigger,
            duration_s=self.duration_s,
            cpus_marked=self.cpus_marked,
            started_at=self.started_at,
            grace_period_s=max((c.grace_period_s for c in self.cpus), default=0.0),
            mutex_wait_s=self.mutex_wait_s,
            cpus=[
                pb.DrainCpuResult(
                    cpu=c.cpu,
                    pages=c.pages,
                    duration_s=c.duration_s,
                    wait_s=c.wait_s,
                    ok=c.ok,
                    error=c.error,
                    grace_period_s=c.grace_period_s,
                )
                for c in self.cpus
            ],
        )
