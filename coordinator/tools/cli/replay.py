"""`pcpsim replay`: a post-merge pcp bug replayed, one line a profile: on the pure model (node.mm.bugs),
or for bulk-free with --cpus N > 1 as a storm of N CPUs on the virtual engine (node.virtual.bulk_free_storm)."""

from coordinator.tools.cli.errors import CliError
from node.mm import bugs
from node.mm import profile as profiles


def cmd_replay(args) -> int:
    if args.cpus > 1:
        return _storm(args)
    if args.seed is not None:
        raise CliError("--seed is for the virtual engine's storm: give it with --cpus N (N > 1)")
    replay = bugs.REPLAYS[args.replay]
    failed = False
    for name in args.kernel or bugs.VARIANTS[args.replay]:
        result = replay(profiles.get(name))
        failed = _print(args.replay, name, result) or failed
    return 1 if failed else 0


def _storm(args) -> int:
    from node.virtual import bulk_free_storm as storm  # greenlet and the engine: only for this

    if args.replay != "bulk-free":
        raise CliError(f"--cpus runs bulk-free's many-CPU storm; {args.replay} replays one CPU")
    kernels = args.kernel or bugs.STORM_VARIANTS
    for name in kernels:  # every refusal before anything runs
        try:
            storm.check_storm(name, args.cpus)
        except ValueError as err:
            raise CliError(str(err)) from None
    seed = 1 if args.seed is None else args.seed
    failed = False
    for name in kernels:
        result = storm.bulk_free_storm(name, args.cpus, seed)
        failed = _print(args.replay, f"{name} ({args.cpus} CPUs, seed {seed})", result) or failed
    return 1 if failed else 0


def _print(replay: str, under: str, result: bugs.Replay) -> bool:
    facts = " ".join(f"{k}={v}" for k, v in result.facts.items())
    print(f"{replay} under {under}: {'FAILED' if result.findings else 'passed'}  {facts}")
    for finding in result.findings:
        print(f"  - {finding}")
    return bool(result.findings)
