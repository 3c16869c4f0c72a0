"""rt-app task sets: the subset of rt-app's JSON format that maps onto pcpsim's latency tasks.

rt-app (github.com/scheduler-tools/rt-app, doc/tutorial.txt) describes threads as a "tasks"
object; each task has a policy, a priority, a CPU affinity, a loop count and phases of events.
pcpsim runs one latency task per isolated CPU (node.tasks.LatencyTask): it wakes on an absolute
period, allocates a few pages, runs, frees them and waits for the next period. This module turns
a task set into those tasks, and refuses what has no counterpart here, naming the key:

- top level: "tasks" (required) and "global" ("default_policy"; rt-app's logging and calibration
  keys are accepted and ignored, they do not change the workload);
- a task: "policy" SCHED_FIFO (isolated-rt: its run phases never yield to queued work) or
  SCHED_OTHER (isolated-preemptible: queued work preempts it), "priority" (1-99 for FIFO, a nice
  value -20..19 for OTHER; validated, there is one task per CPU to rank), "cpus" (simulated CPU
  numbers, required: every task is pinned), "instance" (one copy per CPU: it must equal the number
  of CPUs), "loop" (-1: until the cluster stops, else that many periods), one phase (given inline
  or as "phases" with one entry, its own "loop" multiplying the task's), and the pcpsim extension
  "pcpsim": {"allocs": pages allocated and freed per period (default 0), "deadline": us after the
  programmed wake-up (default the period)};
- events, in order, a key's trailing digits ignored as rt-app does ("run0", "run1"): "run" (us
  busy), "sleep" (us blocked: queued work may run), and exactly one "timer" {"ref", "period",
  "mode"}: the period. pcpsim's timer keeps its grid and counts a period it overran as missed, as
  cyclictest does; rt-app's "relative" and "absolute" modes differ only after such an overrun.

Times are microseconds of wall time, like the task flags (node.shared.timebase: tasks are user
space, configured in wall time). Pure: parse() takes the decoded document; load() reads a file.
"""

import dataclasses
import functools
import json
import os
import pathlib
import re
from dataclasses import dataclass

from node.shared.cpulist import MAX_CPUS, ROLE_HOUSEKEEPING, ROLE_PREEMPTIBLE, ROLE_RT

DEFAULT_PATH = pathlib.Path(__file__).parent / "workloads" / "default.json"

FIFO, OTHER = "SCHED_FIFO", "SCHED_OTHER"
# rt-app keys outside the subset, with why pcpsim refuses them.
_UNSUPPORTED_POLICY = "pcpsim models SCHED_FIFO (isolated-rt) and SCHED_OTHER (isolated-preemptible) only"
_UNSUPPORTED_TOP = {"resources": "pcpsim models no mutexes or conditions between tasks"}
_IGNORED_GLOBAL = {
    "calibration",
    "logdir",
    "log_basename",
    "log_size",
    "ftrace",
    "gnuplot",
    "lock_pages",
    "pi_enabled",
    "io_device",
    "mem_buffer_size",
    "cumulative_slack",
}
_UNSUPPORTED_GLOBAL = {
    "duration": "a run lasts as long as its cluster (cluster up) or phase (compare --measure-s)",
}
_UNSUPPORTED_TASK = {
    "delay": "every task starts with its cluster",
    "dl-runtime": _UNSUPPORTED_POLICY,
    "dl-period": _UNSUPPORTED_POLICY,
    "dl-deadline": _UNSUPPORTED_POLICY,
    "util_min": "pcpsim has no utilization clamping",
    "util_max": "pcpsim has no utilization clamping",
    "membind_nodes": "the simulated machine has one memory node",
    "taskgroup": "pcpsim has no task groups",
}
_UNSUPPORTED_EVENT = {
    name: "pcpsim's tasks only run, sleep and wait for their timer"
    for name in (
        "runtime",
        "mem",
        "iorun",
        "lock",
        "unlock",
        "wait",
        "signal",
        "broad",
        "sync",
        "barrier",
        "suspend",
        "resume",
        "yield",
        "fork",
    )
}
_TASK_ONLY = ("policy", "priority", "cpus", "instance", "pcpsim", *_UNSUPPORTED_TASK)


class WorkloadError(ValueError):
    """A task set pcpsim cannot run; the message starts with the key path at fault."""


@dataclass(frozen=True)
class RtTask:
    """One rt-app task as pcpsim runs it, a copy on each of `cpus`."""

    name: str
    cpus: tuple[int, ...]
    rt: bool
    priority: int
    period_s: float
    # What the task does between its timer's wake-ups, in order: ("run" | "sleep", seconds).
    segments: tuple[tuple[str, float], ...]
    deadline_s: float
    allocs: int
    loops: int | None  # periods to run; None: until the cluster stops

    @property
    def busy_s(self) -> float:
        return sum(s for kind, s in self.segments if kind == "run")

    @property
    def role(self) -> str:
        return ROLE_RT if self.rt else ROLE_PREEMPTIBLE


@dataclass(frozen=True)
class Workload:
    tasks: tuple[RtTask, ...]
    source: str | None = None  # the file it was read from (load), which nodes are given

    def task_on(self, cpu: int) -> RtTask | None:
        return next((t for t in self.tasks if cpu in t.cpus), None)

    @property
    def cpus(self) -> list[int]:
        return sorted(c for t in self.tasks for c in t.cpus)

    def roles(self, nr_cpus: int) -> list[str]:
        """Each CPU's role: a named CPU runs its task, the others are housekeeping (at least one,
        to drive the zone)."""
        beyond = [c for c in self.cpus if c >= nr_cpus]
        if beyond:
            raise WorkloadError(f"tasks: CPUs {beyond} are beyond the cluster's {nr_cpus} CPUs (0-{nr_cpus - 1})")
        roles = [(t.role if (t := self.task_on(c)) else ROLE_HOUSEKEEPING) for c in range(nr_cpus)]
        if ROLE_HOUSEKEEPING not in roles:
            raise WorkloadError(f"tasks: every one of the {nr_cpus} CPUs runs a task; leave one for housekeeping")
        return roles

    def role_of(self, cpu: int) -> str:
        task = self.task_on(cpu)
        return task.role if task else ROLE_HOUSEKEEPING


def load(path: str | pathlib.Path) -> Workload:
    """Read and parse a task set file; errors name the file and the key."""
    try:
        with open(path) as f:
            doc = json.load(f, object_pairs_hook=_unique_keys)
    except OSError as err:
        raise WorkloadError(f"{path}: cannot read: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise WorkloadError(f"{path}: not JSON: {err}") from None
    except WorkloadError as err:
        raise WorkloadError(f"{path}: {err}") from None
    try:
        return dataclasses.replace(parse(doc), source=os.path.abspath(path))
    except WorkloadError as err:
        raise WorkloadError(f"{path}: {err}") from None


@functools.cache
def default() -> Workload:
    """The task set a cluster runs without --workload (deploy/rt-app/default.json links to it)."""
    return load(DEFAULT_PATH)


def default_task(role: str) -> RtTask:
    """The default task set's task for a latency role, whichever CPU runs it (a node given
    --role or the --isolated/--rt map instead of a task set)."""
    return next(t for t in default().tasks if t.rt == (role == ROLE_RT))


def _unique_keys(pairs: list) -> dict:
    # rt-app requires unique keys (workgen numbers repeated events: "run0", "run1"); json would
    # silently keep the last one.
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise WorkloadError(f"{key}: key given twice in one object (number repeated events: run0, run1)")
        out[key] = value
    return out


def parse(doc) -> Workload:
    _object(doc, "(top level)")
    for key in doc:
        if key in _UNSUPPORTED_TOP:
            _unsupported(key, _UNSUPPORTED_TOP[key])
        elif key not in ("tasks", "global"):
            _unknown(key)
    default_policy = _global(doc.get("global", {}))
    if "tasks" not in doc:
        raise WorkloadError('tasks: required (an object of tasks, e.g. {"rt": {...}})')
    tasks = _object(doc["tasks"], "tasks")
    if not tasks:
        raise WorkloadError("tasks: no task given")
    parsed = [_task(name, body, f"tasks.{name}", default_policy) for name, body in tasks.items()]
    _check_shared(parsed)
    return Workload(tuple(t for t, _ in parsed))


def _global(body) -> str:
    _object(body, "global")
    for key in body:
        if key in _UNSUPPORTED_GLOBAL:
            _unsupported(f"global.{key}", _UNSUPPORTED_GLOBAL[key])
        elif key not in _IGNORED_GLOBAL and key != "default_policy":
            _unknown(f"global.{key}")
    return _policy(body.get("default_policy", OTHER), "global.default_policy")


def _task(name: str, body, path: str, default_policy: str) -> tuple[RtTask, tuple[str, str]]:
    """The task, and its timer's (key path, ref) for the checks across tasks."""
    _object(body, path)
    allowed_task = {"policy", "priority", "cpus", "instance", "loop", "phases", "pcpsim"}
    for key in body:
        if key in _UNSUPPORTED_TASK:
            _unsupported(f"{path}.{key}", _UNSUPPORTED_TASK[key])
    policy = _policy(body.get("policy", default_policy), f"{path}.policy")
    rt = policy == FIFO
    lo, hi, prio_default = (1, 99, 10) if rt else (-20, 19, 0)
    priority = _int(body.get("priority", prio_default), f"{path}.priority", lo, hi)
    if "cpus" not in body:
        raise WorkloadError(f"{path}.cpus: required: pcpsim pins every task to the simulated CPUs it names")
    cpus = body["cpus"]
    if not isinstance(cpus, list) or not cpus:
        raise WorkloadError(f"{path}.cpus: must be a non-empty list of CPU numbers, got {cpus!r}")
    for i, c in enumerate(cpus):
        _int(c, f"{path}.cpus[{i}]", 0, MAX_CPUS - 1)
    if len(set(cpus)) != len(cpus):
        raise WorkloadError(f"{path}.cpus: a CPU is named twice in {cpus}")
    if "instance" in body:
        instance = _int(body["instance"], f"{path}.instance", 1)
        if instance != len(cpus):
            raise WorkloadError(
                f"{path}.instance: pcpsim runs one copy of a task per CPU it names: "
                f"{instance} instances on {len(cpus)} CPUs"
            )
    elif len(cpus) > 1:
        raise WorkloadError(
            f"{path}.cpus: one thread allowed on {len(cpus)} CPUs would migrate between them, which "
            f'pcpsim does not model; give "instance": {len(cpus)} for one pinned copy per CPU'
        )
    task_loop = _int(body.get("loop", -1), f"{path}.loop", -1)
    if task_loop == 0:
        raise WorkloadError(f"{path}.loop: must be -1 (until the cluster stops) or >= 1, got 0")
    if "phases" in body:
        phases = _object(body["phases"], f"{path}.phases")
        if len(phases) != 1:
            _unsupported(f"{path}.phases", f"pcpsim runs one periodic pattern per task; {len(phases)} phases given")
        (phase_name, phase), *_ = phases.items()
        phase_path = f"{path}.phases.{phase_name}"
        _object(phase, phase_path)
        stray = [k for k in body if k not in allowed_task]
        if stray:
            _unknown(f"{path}.{stray[0]}", "(events go in the phase when a task has phases)")
        for key in phase:
            if key in _TASK_ONLY:
                _unsupported(f"{phase_path}.{key}", "set it on the task: pcpsim keeps one setting per task")
        events = {k: v for k, v in phase.items() if k != "loop"}
        phase_loop = _int(phase.get("loop", 1), f"{phase_path}.loop", 1)
    else:
        phase_path = path
        events = {k: v for k, v in body.items() if k not in allowed_task}
        phase_loop = 1
    period_s, segments, ref = _events(events, phase_path)
    ext = _pcpsim(body.get("pcpsim", {}), f"{path}.pcpsim")
    deadline_us = ext.get("deadline")
    task = RtTask(
        name=name,
        cpus=tuple(cpus),
        rt=rt,
        priority=priority,
        period_s=period_s,
        segments=segments,
        deadline_s=deadline_us / 1e6 if deadline_us is not None else period_s,
        allocs=ext.get("allocs", 0),
        loops=None if task_loop == -1 else task_loop * phase_loop,
    )
    return task, ref


def _events(events: dict, path: str) -> tuple[float, tuple[tuple[str, float], ...], tuple[str, str]]:
    """The timer's period, and the run/sleep segments from its wake-up to the next wait (rt-app
    repeats the events in a loop, so those after the timer come first, then those before it)."""
    before: list[tuple[str, float]] = []
    after: list[tuple[str, float]] = []
    timer = None
    for key, value in events.items():
        kind = _event_kind(key)
        where = f"{path}.{key}"
        if kind in _UNSUPPORTED_EVENT:
            _unsupported(where, _UNSUPPORTED_EVENT[kind])
        if kind in ("run", "sleep"):
            (after if timer else before).append((kind, _int(value, where, 0) / 1e6))
        elif kind == "timer":
            if timer is not None:
                _unsupported(where, f"one timer per task: {timer[0]} already sets the period")
            timer = (where, _timer(value, where))
        else:
            _unknown(where)
    if timer is None:
        raise WorkloadError(f'{path}: no "timer" event: pcpsim\'s tasks are periodic, the timer sets the period')
    merged: list[tuple[str, float]] = []
    for kind, seconds in after + before:
        if seconds == 0:
            continue
        if merged and merged[-1][0] == kind:
            merged[-1] = (kind, merged[-1][1] + seconds)
        else:
            merged.append((kind, seconds))
    where, (ref, period_us) = timer
    return period_us / 1e6, tuple(merged), (where, ref)


def _event_kind(key: str) -> str:
    match = re.fullmatch(r"([a-z_-]+?)\d*", key)
    return match.group(1) if match else key


def _timer(value, path: str) -> tuple[str, int]:
    _object(value, path)
    for key in value:
        if key not in ("ref", "period", "mode"):
            _unknown(f"{path}.{key}")
    ref = value.get("ref")
    if not isinstance(ref, str) or not ref:
        raise WorkloadError(f"{path}.ref: required, a timer name (a string), got {ref!r}")
    if "period" not in value:
        raise WorkloadError(f"{path}.period: required, the period in us")
    period = _int(value["period"], f"{path}.period", 1)
    mode = value.get("mode", "relative")
    if mode not in ("relative", "absolute"):
        raise WorkloadError(f"{path}.mode: must be relative or absolute, got {mode!r}")
    return ref, period


def _pcpsim(body, path: str) -> dict:
    _object(body, path)
    out = {}
    for key, value in body.items():
        if key == "allocs":
            out[key] = _int(value, f"{path}.allocs", 0)
        elif key == "deadline":
            out[key] = _int(value, f"{path}.deadline", 1)
        else:
            _unknown(f"{path}.{key}", "(pcpsim's extension keys: allocs, deadline)")
    return out


def _check_shared(tasks: list[tuple[RtTask, tuple[str, str]]]) -> None:
    """One task per CPU; a timer shared between tasks (a ref not starting with "unique") is
    rt-app's way of synchronising them, which pcpsim does not model."""
    owner: dict[int, str] = {}
    for t, _ in tasks:
        for c in t.cpus:
            if c in owner:
                raise WorkloadError(
                    f"tasks.{t.name}.cpus: cpu {c} already runs task {owner[c]!r}; pcpsim runs one latency task per CPU"
                )
            owner[c] = t.name
    refs: dict[str, str] = {}
    for t, (where, ref) in tasks:
        if ref.startswith("unique"):
            continue
        if ref in refs:
            _unsupported(
                f"{where}.ref",
                f"timer {ref!r} is shared with task {refs[ref]!r}; pcpsim gives each task its own timer "
                '(name it "unique..." as rt-app does for a per-thread timer)',
            )
        if len(t.cpus) > 1:
            _unsupported(f"{where}.ref", f'{len(t.cpus)} instances would share timer {ref!r}: name it "unique..."')
        refs[ref] = t.name


def _policy(value, path: str) -> str:
    if value in (FIFO, OTHER):
        return value
    if value in ("SCHED_RR", "SCHED_DEADLINE", "SCHED_IDLE"):
        _unsupported(path, f"{value}: {_UNSUPPORTED_POLICY}")
    raise WorkloadError(f"{path}: must be {FIFO} or {OTHER}, got {value!r}")


def _int(value, path: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise WorkloadError(f"{path}: must be a whole number, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise WorkloadError(f"{path}: must be {bound}, got {value}")
    return value


def _object(value, path: str) -> dict:
    if not isinstance(value, dict):
        raise WorkloadError(f"{path}: must be a JSON object, got {type(value).__name__}")
    return value


def _unknown(path: str, hint: str = "") -> None:
    raise WorkloadError(f"{path}: unknown key {hint}".rstrip())


def _unsupported(path: str, why: str) -> None:
    raise WorkloadError(f"{path}: rt-app feature outside the subset pcpsim maps: {why}")
