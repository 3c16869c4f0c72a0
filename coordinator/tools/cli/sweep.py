"""`pcpsim chaos sweep` (random fault schedules under virtual time, one per seed, against each
strategy, failures shrunk to scenario files) and `pcpsim chaos sweep-merge` (shards of a sweep run
as a Kubernetes Indexed Job, one summary). docs/sweep.md."""

import argparse
import dataclasses
import functools
import glob
import importlib.util
import logging
import os
import time

from coordinator.tools.chaos import scenario
from coordinator.tools.chaos.checker import FINDINGS
from coordinator.tools.chaos.sweep import driver, generate, shards
from coordinator.tools.cli import flags, paths
from coordinator.tools.cli.errors import CliError
from coordinator.tools.progress import Progress
from node.mm import profile as profiles
from node.sim import noise as noise_models

UNSAFE = {
    name.removeprefix("unsafe_").replace("_", "-"): name
    for name in scenario.ClusterSpec.__dataclass_fields__
    if name.startswith("unsafe_")
}
INDEX_ENV = "JOB_COMPLETION_INDEX"  # set by Kubernetes in each pod of an Indexed Job


def add_parsers(chaos_sub) -> None:
    """`sweep` and `sweep-merge` under `pcpsim chaos`."""
    sw = chaos_sub.add_parser(
        "sweep",
        help="random fault schedules under virtual time, one per seed, each failure shrunk to a scenario file",
        description="For each seed, draw a random fault schedule (docs/sweep.md: the bounds), run it under "
        "virtual time (or, --engine wall, on real processes) against each strategy and check it as `chaos run` "
        "does. Writes each failure's scenario "
        "(and with --shrink a smallest one that still fails) to OUT as TOML that `chaos run FILE --engine "
        "virtual` replays, and the results to OUT/sweep.json (OUT/shard-I-of-N.json with --index/--count). "
        "Exit 0: every run valid; 1: some invalid or crashed; 2: some unknown. A shard exits 0 once it ran "
        "to its end: `sweep-merge` judges.",
    )
    sw.add_argument(
        "--seeds",
        required=True,
        type=flags.seeds,
        help="seeds to run: N-M, N, or a comma list of both (at most 1,000,000)",
    )
    sw.add_argument(
        "--strategies",
        type=flags.strategy_list,
        default=scenario.STRATEGIES,
        help=f"comma-separated strategies each seed runs against (default {','.join(scenario.STRATEGIES)})",
    )
    sw.add_argument(
        "--engine",
        choices=flags.ENGINES,
        default="virtual",
        help="virtual (default): every run under virtual time, reproducible from its seed; wall: on a local "
        "cluster of real processes, as `chaos run` runs a file, for what only real processes do (signals, "
        "sockets, timeouts), one run at a time unless --jobs says otherwise; no --shrink, no --noise",
    )
    sw.add_argument(
        "--jobs",
        type=flags.positive_int,
        help="processes (default: one per core this process may run on; 1 with --engine wall)",
    )
    sw.add_argument("--out", default=".pcpsim/sweep", help="where results and scenario files go (default %(default)s)")
    sw.add_argument(
        "--shrink",
        action="store_true",
        help="shrink each failure: fewest faults, fewest CPUs, earliest, shortest; then margins",
    )
    sw.add_argument(
        "--unsafe",
        type=_unsafe,
        default=(),
        help=f"TEST ONLY: comma-separated planted bugs switched on in every scenario ({', '.join(UNSAFE)})",
    )
    sw.add_argument(
        "--faults",
        type=_kinds,
        default=generate.KINDS,
        help=f"comma-separated fault kinds to draw (default all: {','.join(generate.KINDS)})",
    )
    sw.add_argument(
        "--rpc-methods",
        type=_messages,
        default=(),
        help="comma-separated messages the rpc rules aim at, with the method globs that match them (default "
        f"all: {','.join(generate.MESSAGES)})",
    )
    sw.add_argument(
        "--rpc-losses",
        type=_losses,
        default=(),
        help="comma-separated ways the rpc rules lose what they match, one per rule (default all: "
        f"{','.join(generate.LOSSES)}; delay loses nothing)",
    )
    sw.add_argument(
        "--noise",
        choices=noise_models.NOISE,
        default=scenario.ClusterSpec.noise,
        help="the host-noise model of every virtual CPU's timed wake-ups (node.sim.noise; default %(default)s): "
        "model or quiet draws each wake-up's lateness from the seed, so each seed also tries other timings",
    )
    sw.add_argument(
        "--kernel",
        choices=profiles.LIVE,
        default=scenario.ClusterSpec.kernel,
        help="the kernel profile of every run (`pcpsim kernels`; default %(default)s); every strategy of "
        "--strategies must be able to drain under it",
    )
    sw.add_argument(
        "--finding",
        choices=FINDINGS,
        help="hunt this kind of violation: shrink only the runs that have it, keeping it (default: shrink every "
        "failure, keeping its verdict and first kind of violation)",
    )
    sw.add_argument(
        "--max-failures",
        type=flags.positive_int,
        metavar="N",
        help="stop once N runs have failed (with --finding: have that violation); the seeds after the one "
        "that made N do not run. Not with --index/--count: a shard runs all its seeds",
    )
    sw.add_argument(
        "--index",
        type=flags.nonnegative_int,
        help=f"run only shard INDEX of --count (default: ${INDEX_ENV} if set, as in a Kubernetes Indexed Job)",
    )
    sw.add_argument("--count", type=flags.positive_int, help="how many shards the seeds are split into")
    sw.set_defaults(command="chaos-sweep")
    merge = chaos_sub.add_parser(
        "sweep-merge",
        help="merge the shard files of one sweep into one summary",
        description="Check the shards are of one sweep, print its summary (MISSING names shards not given). "
        "Exit as `chaos sweep`, or 2 if a shard is missing.",
    )
    merge.add_argument(
        "shards", nargs="+", metavar="SHARD", help="shard files (OUT/shard-I-of-N.json), or directories of them"
    )
    merge.add_argument("--json", metavar="PATH", help="also write the merged results here")
    merge.set_defaults(command="chaos-sweep-merge")


def cmd_sweep(args) -> int:
    index, count = _shard(args)
    if args.max_failures is not None and count > 1:
        raise CliError("--max-failures with --index/--count: a shard runs every seed it has, for the merge")
    seeds = shards.shard_of(args.seeds[1], index, count) if count > 1 else args.seeds[1]
    wall = args.engine == "wall"
    if wall and args.shrink:
        raise CliError(
            "--shrink with --engine wall: shrinking reruns a failure tens of times, and a wall run does not replay; "
            "shrink under the virtual engine, or run the failure's file again with `chaos run`"
        )
    if wall and args.noise != scenario.ClusterSpec.noise:
        raise CliError(
            "--noise with --engine wall: it models a host's noise under virtual time; real processes have it"
        )
    if not wall and importlib.util.find_spec("coordinator.tools.chaos.virtual_runner") is None:
        raise CliError("this tree has no virtual runner (coordinator.tools.chaos.virtual_runner)")
    try:
        scenario.check_kernel(args.kernel, args.strategies)
    except scenario.ScenarioError as err:
        raise CliError(f"--kernel {args.kernel} with --strategies {','.join(args.strategies)}: {err}") from None
    paths.output_dir("--out", args.out)
    for flag, given in (("--rpc-methods", args.rpc_methods), ("--rpc-losses", args.rpc_losses)):
        if given and "rpc" not in args.faults:
            raise CliError(f"{flag} aims rpc rules, and --faults draws none: add rpc to --faults")
    plan = driver.Plan(
        args.strategies,
        args.unsafe,
        finding=args.finding,
        kinds=args.faults,
        messages=args.rpc_methods,
        losses=args.rpc_losses,
        noise=args.noise,
        kernel=args.kernel,
    )
    if wall:
        # Imported here: the CLI's virtual-time commands run where grpc is not installed (tests/unit/test_no_grpc.py).
        from coordinator.tools.chaos.sweep import wall as wall_runs

        runs_dir = os.path.join(args.out, "runs")
        plan = dataclasses.replace(plan, runner=functools.partial(wall_runs.run, runs_dir), engine="wall")
    # Thousands of runs: their processes' warnings (a failed housekeeping step, say) would bury the
    # summary; each run's verdict says what went wrong. driver.Workers hands this level to its workers.
    logging.disable(logging.WARNING)
    processes = min(args.jobs or (1 if wall else driver.default_jobs()), len(seeds))
    t0 = time.monotonic()
    progress: list[Progress] = []  # made at the first seed's end: a pace to estimate the rest from

    def tick(done: int, total: int, failing: int) -> None:
        if not progress:
            progress.append(Progress(total, 0.0))
            progress[0].t0 = t0
        elapsed = max(1e-9, time.monotonic() - t0)
        progress[0].estimate_s = elapsed * total / done  # seeds so far at this pace
        progress[0].update(done - 1, f"seed {seeds[done - 1]}", f"{failing} failing, {done / elapsed:.1f} seeds/s")

    try:
        shard = driver.sweep(
            plan, seeds, args.out, processes, args.shrink, args.seeds[0], index, count, tick, args.max_failures
        )
    finally:
        if progress:
            progress[0].done()
    path = os.path.join(args.out, f"shard-{index}-of-{count}.json" if count > 1 else "sweep.json")
    shards.write(shard, path)
    print(shards.summary(shard, time.monotonic() - t0))
    print(f"results in {path}")
    # A shard's failures are results for the merge to judge: it ran to its end, as a Job's pod must
    # to count as done (a non-zero exit would have Kubernetes retry it, or fail the whole Job).
    return 0 if count > 1 else shards.exit_code(shard)


def cmd_sweep_merge(args) -> int:
    paths = [q for p in args.shards for q in (sorted(glob.glob(f"{p}/shard-*.json")) if os.path.isdir(p) else [p])]
    try:
        merged = shards.merge([(p, shards.read(p)) for p in paths])
    except shards.ShardError as err:
        raise CliError(str(err)) from None
    if args.json:
        try:
            shards.write(merged, args.json)
        except OSError as err:
            raise CliError(f"cannot write {args.json}: {err.strerror}") from None
    print(shards.summary(merged))
    return 2 if shards.missing(merged) else shards.exit_code(merged)


def _shard(args) -> tuple[int, int]:
    index = args.index
    if index is None and INDEX_ENV in os.environ:
        text = os.environ[INDEX_ENV]
        try:
            index = flags.nonnegative_int(text)
        except argparse.ArgumentTypeError as err:
            raise CliError(f"${INDEX_ENV}={text!r}: {err}") from None
    if index is None:
        if args.count is not None:
            raise CliError("--count needs --index (or $JOB_COMPLETION_INDEX): which shard to run")
        return 0, 1
    if args.count is None:
        raise CliError(f"shard {index} of how many? --count is needed with --index or ${INDEX_ENV}")
    try:
        shards.shard_of(args.seeds[1], index, args.count)
    except shards.ShardError as err:
        raise CliError(str(err)) from None
    return index, args.count


def _kinds(text: str) -> tuple:
    names = _names(text, generate.KINDS, "fault kind")
    return tuple(k for k in generate.KINDS if k in names)  # the generator's order: a seed's draws fixed


def _messages(text: str) -> tuple:
    names = _names(text, generate.MESSAGES, "message")
    return tuple(m for m in generate.MESSAGES if m in names)


def _losses(text: str) -> tuple:
    names = _names(text, generate.LOSSES, "loss")
    return tuple(w for w in generate.LOSSES if w in names)


def _names(text: str, known: tuple, what: str) -> list[str]:
    names = [n.strip() for n in text.split(",")]
    if unknown := [n for n in names if n not in known]:
        raise argparse.ArgumentTypeError(f"unknown {what} {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
    return names


def _unsafe(text: str) -> tuple:
    return tuple(dict.fromkeys(UNSAFE[n] for n in _names(text, tuple(UNSAFE), "switch")))
