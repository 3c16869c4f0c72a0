"""A sweep: each seed's scenario (generate) run under virtual time against each strategy, checked by
the chaos checker, across one process per core; failures written as scenario files, and the first
of each distinct failure (strategy, verdict and first kind of violation) shrunk.

Outcomes come back in seed order whatever the number of processes (Workers.map), so the shard file
and the summary are the same for one process or many. A runner is any picklable function
`(scenario, strategy) -> checker.Verdict`; `virtual` (coordinator.tools.chaos.virtual_runner) is
the sweep's, `--engine wall`'s is coordinator.tools.chaos.sweep.wall's (kept out of this module, which
the virtual engine's processes import without grpc), tests give fakes. A run that raises is an
outcome too ("error", its text the first violation): a crash of the engine under some schedule is a
finding, not a reason to stop.
"""

import collections
import logging
import multiprocessing
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from coordinator.tools.chaos import checker
from coordinator.tools.chaos import scenario as sc
from coordinator.tools.chaos.sweep import generate, shards, shrink, tomlfile

Runner = Callable[[sc.Scenario, str], checker.Verdict]
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")


def virtual(scenario: sc.Scenario, strategy: str) -> checker.Verdict:
    """One run under virtual time (imported here: the sweep's other modules do not need it)."""
    from coordinator.tools.chaos import virtual_runner

    return virtual_runner.run(scenario, strategy)


@dataclass(frozen=True)
class Outcome:
    seed: int
    strategy: str
    verdict: str  # shards.VERDICTS
    first: str  # the first violation; "" when valid
    kinds: tuple = ()  # every kind of violation found, in the checker's order ("error" for a crash)

    @property
    def signature(self) -> tuple[str, str]:
        """What a shrunk scenario must still show: the verdict and the first violation's kind."""
        return self.verdict, self.kinds[0] if self.kinds else ""


def outcome(runner: Runner, scenario: sc.Scenario, strategy: str) -> Outcome:
    try:
        v = runner(scenario, strategy)
    except Exception as err:  # any crash of a run is its outcome
        # An object's default repr in the text names its address, which differs run to run.
        text = _ADDRESS.sub("0x…", f"{type(err).__name__}: {err}")
        return Outcome(scenario.seed, strategy, "error", text, ("error",))
    if v.valid is True:
        return Outcome(scenario.seed, strategy, "valid", "")
    kinds = tuple(k for k, items in v.findings.items() if items)
    first = f"{kinds[0]}: {v.findings[kinds[0]][0]}" if kinds else "no finding named"
    return Outcome(scenario.seed, strategy, "invalid" if v.valid is False else "unknown", first, kinds)


@dataclass(frozen=True)
class Plan:
    """What every seed of a sweep runs: the same for every process and every shard."""

    strategies: tuple
    unsafe: tuple = ()
    runner: Runner = virtual
    finding: str | None = None  # hunt this kind of violation: only runs with it are shrunk, keeping it
    kinds: tuple = generate.KINDS  # the fault kinds drawn (--faults)
    messages: tuple = ()  # the messages rpc rules aim at (--rpc-methods); () for all
    losses: tuple = ()  # how rpc rules lose them (--rpc-losses); () for every way
    noise: str = sc.ClusterSpec.noise  # every scenario's host-noise model (--noise)
    engine: str = "virtual"  # which `runner` is (--engine): the shard says so
    kernel: str = sc.ClusterSpec.kernel  # every scenario's kernel profile (--kernel)

    def scenario(self, seed: int) -> sc.Scenario:
        drawn = generate.generate(seed, self.strategies, self.kinds, self.messages, self.losses)
        return generate.with_unsafe(sc.with_kernel(sc.with_noise(drawn, self.noise), self.kernel), self.unsafe)

    def hunted(self, o: Outcome) -> bool:
        return o.verdict != "valid" if self.finding is None else self.finding in o.kinds

    def same_failure(self, o: Outcome, failed: Outcome) -> bool:
        """Whether a shrink candidate's outcome `o` is still the failure `failed`: the hunted kind of
        violation still found, or (hunting none) the same verdict with the same first kind."""
        return self.finding in o.kinds if self.finding else o.signature == failed.signature


def run_seed(job: tuple[Plan, int]) -> list[Outcome]:
    plan, seed = job
    s = plan.scenario(seed)
    return [outcome(plan.runner, s, st) for st in plan.strategies]


def shrink_failure(job: tuple[Plan, Outcome]) -> tuple[shrink.Shrunk, Outcome]:
    """The failing run's scenario shrunk under a predicate that reruns it: the same strategy, the
    same verdict and the same kind of first violation (not some other failure met on the way), its
    instants then given margins for the wall engine (shrink's step 5); and the shrunk scenario's
    own outcome."""
    plan, failed = job
    start = replace(plan.scenario(failed.seed), strategies=(failed.strategy,))
    small = shrink.shrink(
        start, lambda s: plan.same_failure(outcome(plan.runner, s, failed.strategy), failed), margins=True
    )
    return small, outcome(plan.runner, small.scenario, failed.strategy)


class Workers:
    """One process per job slot for the whole sweep, or none (`processes` 1: this process).

    Each worker is a fresh interpreter (spawned, not forked): it needs nothing of the caller but a
    function, its argument and the caller's `logging.disable` level, passed explicitly. A forked
    worker inherited the caller's whole heap, and a caller that had used gRPC (a test process that
    ran a cluster earlier) left gRPC objects in it: a collection in the child ran their finalizers,
    which join threads the child does not have, and the worker hung in `threading._after_fork` (seen
    under `pytest -n 3`, 2026-12-06). Starting costs a worker about 0.1 s of imports."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self.pool = (
            multiprocessing.get_context("spawn").Pool(
                processes, initializer=logging.disable, initargs=(logging.root.manager.disable,)
            )
            if processes > 1
            else None
        )

    def map(self, fn: Callable, jobs: Iterable) -> Iterator:
        """fn over jobs, in their order, at most two jobs per process handed out ahead of the one
        awaited: a caller that stops early (--max-failures) leaves that few behind, not every job
        queued before the next map's (Pool.imap would queue them all at once)."""
        if self.pool is None:
            yield from map(fn, jobs)
            return
        ahead: collections.deque = collections.deque()
        limit = 2 * self.processes
        for job in jobs:
            ahead.append(self.pool.apply_async(fn, (job,)))
            if len(ahead) >= limit:
                yield ahead.popleft().get()
        while ahead:
            yield ahead.popleft().get()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()


def default_jobs() -> int:
    return len(os.sched_getaffinity(0))


def sweep(
    plan: Plan,
    seeds: list[int],
    out_dir: str,
    processes: int,
    do_shrink: bool,
    spec: str,
    index: int = 0,
    count: int = 1,
    progress: Callable[[int, int, int], None] | None = None,
    max_failures: int | None = None,
) -> shards.Shard:
    """Run `seeds` (this shard's), write each failure's scenario (and its shrunk form) under
    `out_dir`, and return the shard. `progress(done, total, failing)` after each seed.
    `max_failures`: stop after the seed whose runs bring the hunted failures (Plan.hunted) to that
    many; the seeds after it are not run (the same seeds for any number of processes: outcomes come
    in seed order)."""
    workers = Workers(processes)
    try:
        return _sweep(plan, seeds, out_dir, workers, do_shrink, progress, spec, index, count, max_failures)
    finally:
        workers.close()


def _sweep(plan, seeds, out_dir, workers, do_shrink, progress, spec, index, count, max_failures) -> shards.Shard:
    counts = {st: dict.fromkeys(shards.VERDICTS, 0) for st in plan.strategies}
    failed: list[Outcome] = []
    run: list[int] = []
    for seed, outcomes in zip(seeds, workers.map(run_seed, ((plan, s) for s in seeds)), strict=False):
        run.append(seed)
        for o in outcomes:
            counts[o.strategy][o.verdict] += 1
            if o.verdict != "valid":
                failed.append(o)
        if progress is not None:
            progress(len(run), len(seeds), len(failed))
        if max_failures is not None and sum(map(plan.hunted, failed)) >= max_failures:
            break
    os.makedirs(out_dir, exist_ok=True)
    failures = []
    for o in failed:
        s = replace(plan.scenario(o.seed), strategies=(o.strategy,))
        failures.append(
            shards.Failure(
                o.seed,
                o.strategy,
                o.verdict,
                o.first,
                list(o.kinds),
                len(s.faults),
                s.cluster.cpus,
                _write(s, o, out_dir, "", engine=plan.engine),
            )
        )
    # One shrink per distinct failure: the first seed (in seed order) of each strategy and signature
    # (a hundred seeds tripping one bug are one bug; each shrink costs tens of runs).
    first_of: dict = {}
    for f, o in zip(failures, failed, strict=True):
        if plan.hunted(o):
            first_of.setdefault((o.strategy, o.signature), (f, o))
    hunted = list(first_of.values())
    if do_shrink and hunted:
        shrunk = workers.map(shrink_failure, ((plan, o) for _, o in hunted))
        for (f, _), (small, again) in zip(hunted, shrunk, strict=True):
            f.shrunk = {
                "file": _write(small.scenario, again, out_dir, "-shrunk", small.runs),
                "faults": len(small.scenario.faults),
                "cpus": small.scenario.cluster.cpus,
                "runs": small.runs,
                "first": again.first,
                "kinds": list(again.kinds),
            }
    return shards.Shard(
        seeds=spec,
        strategies=list(plan.strategies),
        unsafe=list(plan.unsafe),
        index=index,
        count=count,
        seeds_run=run,
        counts=counts,
        failures=failures,
        finding=plan.finding,
        max_failures=max_failures,
        faults=[] if plan.kinds == generate.KINDS else list(plan.kinds),
        rpc_methods=list(plan.messages),
        rpc_losses=list(plan.losses),
        noise=plan.noise,
        engine=plan.engine,
        kernel=plan.kernel,
    )


def _write(s: sc.Scenario, o: Outcome, out_dir: str, suffix: str, runs: int = 0, engine: str = "virtual") -> str:
    name = f"seed-{o.seed}-{o.strategy}{suffix}"
    path = os.path.join(out_dir, f"{name}.toml")
    how = f"shrunk in {runs} runs from seed {o.seed}'s schedule" if suffix else f"seed {o.seed}'s schedule"
    comment = f"pcpsim chaos sweep: {how}, against {o.strategy}.\nThe sweep's run was {o.verdict}: {o.first}\n" + (
        f"Replay: pcpsim chaos run {path} --engine virtual"
        if engine == "virtual"
        else f"Run again: pcpsim chaos run {path}"
    )
    with open(path, "w", encoding="utf-8") as f:
        f.write(tomlfile.dumps(replace(s, name=name), comment))
    return path
