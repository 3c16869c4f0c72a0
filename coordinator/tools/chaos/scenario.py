"""Chaos scenario files (TOML): the cluster, the workload, the strategies, and a timeline of
faults, each with its heal, ending in a healing phase.

    name = "partition-node"
    description = "cut cpu1 off from the coordinator for longer than the dead timeout"
    seed = 7
    duration_s = 10          # faults happen in [0, duration_s - heal_s)
    heal_s = 4               # every fault is healed by then; the checker runs after it
    strategies = ["workqueue", "remote", "rcu-swap"]

    [cluster]
    cpus = 4
    isolated = "2-3"         # kernel CPU-list syntax; the rest are housekeeping
    rt = "3"
    zone_mb = 256
    lease_ms = 500           # the remote pcp lock's lease
    failure_timeout_ms = 500 # down; also the nodes' membership lease
    dead_timeout_ms = 1500   # dead: pages taken back
    noise = "none"           # under --engine virtual: the host-noise model of each timed wake-up
                             # (node.sim.noise: model, quiet or none); a wall run's is its host's
    kernel = "6.1"           # the kernel profile every CPU and the coordinator run (`pcpsim kernels`)

    [workload]
    drain_interval_ms = 150  # drain_all_pages issued by the workload (seeded jitter)
    force_all_cpus = false
    cma_pages = 0            # > 0: at cma_at_s, AllocContigRange of the zone's last cma_pages
    cma_at_s = 1.0           # pages (pageblock multiples), held to the end

    [[faults]]
    kind = "partition"       # see KINDS
    cpu = 1
    at_s = 2.0
    heal_after_s = 3.0

Every field is checked; an error names the file and the field (`faults[1].cpu: ...`) and
nothing runs. Unknown fields are errors too (a typo must not silently do nothing), and so are an rpc
fault's method glob that matches nothing its process serves ("in") or sends ("out"), and a name that is
not a plain file name (a run directory is named after it, under --out).
"""

import tomllib
from dataclasses import dataclass, field, replace

from coordinator.drain.drain_all import unrunnable
from coordinator.drain.record import STRATEGIES as STRATEGY_VALUES
from coordinator.tools.chaos import scenario_fields as fields
from coordinator.tools.chaos.scenario_fields import ScenarioError
from node.api import fault_points
from node.mm import profile as profiles
from node.mm.zone import zone_pages
from node.sim import faults as sim_faults
from node.sim import noise as noise_models

STRATEGIES = ("workqueue", "remote", "rcu-swap", "qpw")

# kind -> (needs a cpu, allowed extra fields)
KINDS = {
    "kill-node": (True, ()),  # SIGKILL; heal: start it again
    "stop-node": (True, ()),  # SIGSTOP; heal: SIGCONT
    "kill-coordinator": (False, ()),  # SIGKILL; heal: start it again on its address
    "stop-coordinator-mid-drain": (False, ()),  # it SIGSTOPs itself mid-drain; heal: SIGCONT
    "rpc": (False, ("cpu", "side", "direction", "method", "delay_ms", "drop", "drop_reply", "fail")),
    "partition": (True, ()),  # node <-> coordinator, both ways; heal: reconnect
    "slow-cpu": (True, ("factor",)),  # modeled costs x factor; heal: back to 1
    # SIGSTOP the coordinator, start a second one on its address and state directory, SIGCONT the
    # first after resume_after_s while the second runs; heal: SIGKILL the first
    "second-coordinator": (False, ("resume_after_s",)),
}
PAGEBLOCK_PAGES = 512  # node.mm.constants.pageblock_nr_pages: a CMA range is whole pageblocks
SIDES = ("node", "coordinator")
DIRECTIONS = ("in", "out")


# The planted bugs a scenario's [cluster] switches on (TEST ONLY), by the process whose flag it is.
COORDINATOR_UNSAFE = ("unsafe_forget_ranges", "unsafe_no_epoch", "unsafe_declare_dead_on_lost_commit")
NODE_UNSAFE = ("unsafe_skip_fencing", "unsafe_register_once")


@dataclass(frozen=True)
class ClusterSpec:
    cpus: int = 4
    isolated: tuple = ()
    rt: tuple = ()
    zone_mb: int = 256
    zone_used: float = 0.0
    lease_ms: int = 500
    failure_timeout_ms: int = 500
    dead_timeout_ms: int = 1500
    flush_timeout_ms: int = 2000
    unsafe_skip_fencing: bool = False  # TEST ONLY: the checker's broken variant
    unsafe_forget_ranges: bool = False  # TEST ONLY: the coordinator flag of the same name
    unsafe_no_epoch: bool = False  # TEST ONLY: the coordinator flag of the same name
    unsafe_declare_dead_on_lost_commit: bool = False  # TEST ONLY: the coordinator flag of the same name
    unsafe_register_once: bool = False  # TEST ONLY: the node flag of the same name
    noise: str = noise_models.NONE  # the virtual CPUs' timer slack (node.sim.noise); the wall engine's is its host's
    kernel: str = profiles.DEFAULT_KERNEL  # the kernel profile of every process (node.mm.profile), both engines

    def unsafe_coordinator_args(self) -> list[str]:
        return [f"--{k.replace('_', '-')}" for k in COORDINATOR_UNSAFE if getattr(self, k)]

    def unsafe_node_args(self) -> list[str]:
        return [f"--{k.replace('_', '-')}" for k in NODE_UNSAFE if getattr(self, k)]


@dataclass(frozen=True)
class WorkloadSpec:
    drain_interval_ms: int = 150
    force_all_cpus: bool = False
    cma_pages: int = 0
    cma_at_s: float = 1.0


@dataclass(frozen=True)
class Fault:
    kind: str
    at_s: float
    heal_after_s: float
    cpu: int | None = None
    side: str = "node"
    direction: str = "in"
    method: str = "*"
    delay_ms: int = 0
    drop: float = 0.0
    drop_reply: float = 0.0
    fail: float = 0.0
    factor: float = 1.0
    resume_after_s: float = 0.0

    @property
    def heal_at_s(self) -> float:
        return self.at_s + self.heal_after_s

    def where(self) -> dict:
        """Its CPU as a history entry names it ({} for the coordinator's faults)."""
        return {} if self.cpu is None else {"cpu": self.cpu}

    def describe(self) -> str:
        what = self.kind + (f" cpu{self.cpu}" if self.cpu is not None else "")
        if self.kind == "rpc":
            effects = ", ".join(
                f"{k} {v}"
                for k, v in (
                    ("delay_ms", self.delay_ms),
                    ("drop", self.drop),
                    ("drop_reply", self.drop_reply),
                    ("fail", self.fail),
                )
                if v
            )
            what += f" {self.side} {self.direction} {self.method}: {effects}"
        elif self.kind == "slow-cpu":
            what += f" x{self.factor:g}"
        elif self.kind == "second-coordinator":
            what += f" (the first resumed after {self.resume_after_s:g}s)"
        return what


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    description: str
    seed: int
    duration_s: float
    heal_s: float
    strategies: tuple
    cluster: ClusterSpec
    workload: WorkloadSpec
    faults: tuple = field(default_factory=tuple)

    def roles(self) -> list[str]:
        c = self.cluster
        return [
            "isolated-rt" if i in c.rt else "isolated-preemptible" if i in c.isolated else "housekeeping"
            for i in range(c.cpus)
        ]

    def timeline(self) -> list[tuple[float, str, "Fault"]]:
        """The nemesis's steps, (at_s, "start" or "heal", fault), in time order: at one instant the
        starts before the heals, each in file order. Both engines' runners follow it."""
        steps = [(f.at_s, 0, "start", f) for f in self.faults] + [(f.heal_at_s, 1, "heal", f) for f in self.faults]
        return [(at, phase, f) for at, _, phase, f in sorted(steps, key=lambda e: e[:2])]


def with_noise(scenario: Scenario, noise: str) -> Scenario:
    """`scenario` under another host-noise model (`chaos run --noise`, `chaos sweep --noise`)."""
    return replace(scenario, cluster=replace(scenario.cluster, noise=noise))


def with_kernel(scenario: Scenario, kernel: str) -> Scenario:
    """`scenario` under another kernel profile (`chaos run --kernel`, `chaos sweep --kernel`), whose
    callers check it with the strategies they run (check_kernel)."""
    return replace(scenario, cluster=replace(scenario.cluster, kernel=kernel))


def check_kernel(kernel: str, strategies) -> None:
    """A kernel profile a cluster runs (not a bug-replay variant) under which every one of `strategies`
    can drain its CPUs: the coordinator's rule (coordinator.drain.drain_all.unrunnable), asked before
    anything starts rather than met by every drain of the run. Each run's cluster has its strategy as
    its default, as the runners start it."""
    if kernel not in profiles.LIVE:
        raise ScenarioError(f"cluster.kernel: one of {list(profiles.LIVE)} (`pcpsim kernels`), got {kernel!r}")
    profile = profiles.get(kernel)
    for s in strategies:
        why = unrunnable(STRATEGY_VALUES[s], STRATEGY_VALUES[s], profile)
        if why is not None:
            raise ScenarioError(f"cluster.kernel {kernel!r}: strategy {s} cannot run under it: {why}")


def load(path: str) -> Scenario:
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as err:
        raise ScenarioError(f"{path}: cannot read: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(f"{path}: not valid TOML: {err}") from None
    except UnicodeDecodeError as err:  # TOML is UTF-8
        raise ScenarioError(f"{path}: not valid TOML: not UTF-8 (byte {err.start}: {err.reason})") from None
    try:
        return parse(doc, path)
    except ScenarioError as err:
        raise ScenarioError(f"{path}: {err}") from None


def parse(doc: dict, path: str = "<scenario>") -> Scenario:
    fields.known(
        doc, "", {"name", "description", "seed", "duration_s", "heal_s", "strategies", "cluster", "workload", "faults"}
    )
    name = fields.file_name(fields.text(doc, "name", required=True))
    duration = fields.number(doc, "duration_s", 1.0, 3600.0, required=True)
    heal = fields.number(doc, "heal_s", 1.0, 3600.0, default=3.0)
    if heal >= duration:
        raise ScenarioError(f"heal_s ({heal:g}) must be shorter than duration_s ({duration:g})")
    strategies = doc.get("strategies", list(STRATEGIES))
    if (
        not isinstance(strategies, list)
        or not strategies
        or any(s not in STRATEGIES for s in strategies)
        or len(set(strategies)) != len(strategies)
    ):
        raise ScenarioError(
            f"strategies: a non-empty list of distinct names from {list(STRATEGIES)}, got {strategies!r}"
        )
    cluster = _cluster(fields.table(doc, "cluster"))
    check_kernel(cluster.kernel, strategies)
    workload = _workload(fields.table(doc, "workload"), cluster, duration - heal)
    faults_doc = doc.get("faults", [])
    if not isinstance(faults_doc, list):
        raise ScenarioError("faults: an array of tables ([[faults]])")
    faults = tuple(_fault(f, i, cluster, duration - heal) for i, f in enumerate(faults_doc))
    for i, j in overlapping(faults):
        a, b = faults[i], faults[j]
        raise ScenarioError(
            f"faults[{i}] and faults[{j}] both act on {slot(a)} and overlap ([{a.at_s:g}, {a.heal_at_s:g}] s and "
            f"[{b.at_s:g}, {b.heal_at_s:g}] s): the nemesis runs one such fault at a time; start the later one "
            "after the earlier one heals"
        )
    return Scenario(
        name=name,
        path=path,
        description=fields.text(doc, "description", default=""),
        seed=fields.integer(doc, "seed", 0, 2**31 - 1, default=1),
        duration_s=duration,
        heal_s=heal,
        strategies=tuple(strategies),
        cluster=cluster,
        workload=workload,
        faults=faults,
    )


def _cluster(doc: dict) -> ClusterSpec:
    w = "cluster."
    fields.known(doc, w, set(ClusterSpec.__dataclass_fields__))
    cpus = fields.integer(doc, "cpus", 2, 64, default=ClusterSpec.cpus, where=w)
    isolated, rt = fields.cpus(doc, "isolated", cpus), fields.cpus(doc, "rt", cpus)
    if not set(rt) <= set(isolated):
        raise ScenarioError(f"cluster.rt: CPUs {sorted(set(rt) - set(isolated))} are not in cluster.isolated")
    if len(isolated) >= cpus:
        raise ScenarioError("cluster.isolated: at least one CPU must stay housekeeping")
    failure = fields.integer(doc, "failure_timeout_ms", 50, 600_000, default=ClusterSpec.failure_timeout_ms, where=w)
    dead = fields.integer(doc, "dead_timeout_ms", 51, 600_000, default=ClusterSpec.dead_timeout_ms, where=w)
    if dead <= failure:
        raise ScenarioError(f"cluster.dead_timeout_ms ({dead}) must exceed cluster.failure_timeout_ms ({failure})")
    noise = doc.get("noise", ClusterSpec.noise)
    if noise not in noise_models.NOISE:
        raise ScenarioError(f"cluster.noise: one of {', '.join(noise_models.NOISE)}, got {noise!r}")
    kernel = doc.get("kernel", ClusterSpec.kernel)  # checked with the strategies (check_kernel)
    unsafe = {}
    for key in (*NODE_UNSAFE, *COORDINATOR_UNSAFE):
        unsafe[key] = doc.get(key, False)
        if not isinstance(unsafe[key], bool):
            raise ScenarioError(f"cluster.{key}: true or false, got {unsafe[key]!r}")
    return ClusterSpec(
        cpus=cpus,
        isolated=tuple(isolated),
        rt=tuple(rt),
        zone_mb=fields.integer(doc, "zone_mb", 16, 65536, default=ClusterSpec.zone_mb, where=w),
        zone_used=fields.number(doc, "zone_used", 0.0, 0.95, default=ClusterSpec.zone_used, where=w),
        lease_ms=fields.integer(doc, "lease_ms", 10, 60_000, default=ClusterSpec.lease_ms, where=w),
        failure_timeout_ms=failure,
        dead_timeout_ms=dead,
        flush_timeout_ms=fields.integer(
            doc, "flush_timeout_ms", 10, 600_000, default=ClusterSpec.flush_timeout_ms, where=w
        ),
        noise=noise,
        kernel=kernel,
        **unsafe,
    )


def _workload(doc: dict, cluster: ClusterSpec, last_s: float) -> WorkloadSpec:
    w = "workload."
    fields.known(doc, w, set(WorkloadSpec.__dataclass_fields__))
    force = doc.get("force_all_cpus", False)
    if not isinstance(force, bool):
        raise ScenarioError(f"workload.force_all_cpus: true or false, got {force!r}")
    nr_zone_pages = zone_pages(cluster.zone_mb)
    cma = fields.integer(doc, "cma_pages", 0, nr_zone_pages // 2, default=WorkloadSpec.cma_pages, where=w)
    if cma % PAGEBLOCK_PAGES:
        raise ScenarioError(f"workload.cma_pages: a multiple of the pageblock ({PAGEBLOCK_PAGES} pages), got {cma}")
    return WorkloadSpec(
        drain_interval_ms=fields.integer(
            doc, "drain_interval_ms", 10, 60_000, default=WorkloadSpec.drain_interval_ms, where=w
        ),
        force_all_cpus=force,
        cma_pages=cma,
        cma_at_s=fields.number(doc, "cma_at_s", 0.0, last_s, default=WorkloadSpec.cma_at_s, where=w),
    )


def slot(f: Fault) -> str | None:
    """What a fault takes over while it lasts, which no other fault may hold at the same time: the
    coordinator's process (killed, stopped, or replaced by a second one), a CPU's process (killed or
    stopped), a CPU's cost factor. Two such faults at once are no schedule a nemesis can run: a second
    kill's heal would start a second process for one CPU, two second coordinators make three, of which
    each heal ends only the latest, and a heal would reset a factor the other still sets. rpc and
    partition faults are rules kept per fault: any number of them compose."""
    if f.kind in ("kill-coordinator", "stop-coordinator-mid-drain", "second-coordinator"):
        return "the coordinator's process"
    if f.kind in ("kill-node", "stop-node"):
        return f"cpu{f.cpu}'s process"
    if f.kind == "slow-cpu":
        return f"cpu{f.cpu}'s cost factor"
    return None


def overlapping(faults: tuple) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, of faults on one slot whose spans meet (a heal and a start at one
    instant meet too: the nemesis runs the start first)."""
    return [
        (i, j)
        for j, b in enumerate(faults)
        for i, a in enumerate(faults[:j])
        if slot(a) is not None and slot(a) == slot(b) and a.at_s <= b.heal_at_s and b.at_s <= a.heal_at_s
    ]


def _fault(doc, i: int, cluster: ClusterSpec, last_s: float) -> Fault:
    w = f"faults[{i}]."
    if not isinstance(doc, dict):
        raise ScenarioError(f"faults[{i}]: a table, got {doc!r}")
    kind = doc.get("kind")
    if kind not in KINDS:
        raise ScenarioError(f"{w}kind: one of {sorted(KINDS)}, got {kind!r}")
    needs_cpu, extra = KINDS[kind]
    fields.known(doc, w, {"kind", "at_s", "heal_after_s"} | ({"cpu"} if needs_cpu else set()) | set(extra))
    at = fields.number(doc, "at_s", 0.0, last_s, required=True, where=w)
    heal_after = fields.number(doc, "heal_after_s", 0.05, 3600.0, required=True, where=w)
    if at + heal_after > last_s:
        raise ScenarioError(
            f"{w}heal_after_s: healed at {at + heal_after:g}s, after the healing phase "
            f"starts ({last_s:g}s = duration_s - heal_s)"
        )
    kw = {}
    if needs_cpu:
        kw["cpu"] = fields.integer(doc, "cpu", 0, cluster.cpus - 1, required=True, where=w)
    if kind == "rpc":
        kw["side"] = fields.choice(doc, "side", SIDES, Fault.side, w)
        kw["direction"] = fields.choice(doc, "direction", DIRECTIONS, Fault.direction, w)
        kw["method"] = fields.text(doc, "method", default=Fault.method, where=w)
        kw["delay_ms"] = fields.integer(doc, "delay_ms", 0, 60_000, default=Fault.delay_ms, where=w)
        for p in ("drop", "drop_reply", "fail"):
            kw[p] = fields.number(doc, p, 0.0, 1.0, default=getattr(Fault, p), where=w)
        if kw["drop_reply"] and kw["direction"] != "in":
            raise ScenarioError(f'{w}drop_reply: only for direction "in" (a reply lost on its way back)')
        _rule(kw, i)
        if kw["side"] == "node":
            kw["cpu"] = fields.integer(doc, "cpu", 0, cluster.cpus - 1, required=True, where=w)
        elif "cpu" in doc:
            kw["cpu"] = fields.integer(doc, "cpu", 0, cluster.cpus - 1, where=w)  # the coordinator's peer
    if kind == "slow-cpu":
        kw["factor"] = fields.number(doc, "factor", 1.0, 1000.0, required=True, where=w)
    if kind == "second-coordinator":
        kw["resume_after_s"] = fields.number(doc, "resume_after_s", 0.05, heal_after, required=True, where=w)
        if kw["resume_after_s"] >= heal_after:
            raise ScenarioError(f"{w}resume_after_s: the first coordinator resumes before the heal stops it")
    return Fault(kind=kind, at_s=at, heal_after_s=heal_after, **kw)


def _rule(kw: dict, i: int) -> None:
    """An rpc fault's fields as the rule its process will hold (node.sim.faults, node.api.fault_points:
    SetFaults checks the same): one with an effect, and a method glob matching what its process serves
    or sends."""
    try:
        fault_points.check_method(kw["method"], kw["side"], kw["direction"])
    except ValueError as err:
        raise ScenarioError(f"faults[{i}].method: {err}") from None
    effects = {p: kw[p] for p in ("drop", "drop_reply", "fail")}
    try:
        sim_faults.Rule(kw["direction"], kw["method"], delay_s=kw["delay_ms"] / 1000.0, **effects)
    except ValueError as err:
        raise ScenarioError(f"faults[{i}]: {err}") from None
