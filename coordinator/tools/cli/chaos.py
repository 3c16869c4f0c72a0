"""`pcpsim chaos run` (scenario files against local clusters, each run checked; `--engine virtual`:
the whole cluster in this process under virtual time, `--check-determinism` runs each twice), `pcpsim
chaos check` (the checker again on a past run's history) and `pcpsim chaos timeline` (its page again)."""

import json
import os
import sys

from coordinator.tools.cli import paths
from coordinator.tools.cli.errors import CliError
from coordinator.tools.progress import Progress

VIRTUAL_RUN_S = 1.5  # one virtual run of a shipped scenario, in CPU seconds (estimate, for the progress line)


def cmd_chaos(args) -> int:
    from coordinator.tools.chaos import checker, history, scenario, timeline, transfers

    if args.chaos_command == "timeline":
        paths.output_file("--out", args.out)
        try:
            print(f"timeline written to {timeline.write(args.run_dir, args.out)}")
        except timeline.TimelineError as err:
            raise CliError(str(err)) from None
        except OSError as err:
            raise CliError(f"cannot write the timeline: {err.strerror or err}") from None
        return 0
    if args.chaos_command == "check":
        path = os.path.join(args.run_dir, "history.jsonl")
        try:
            entries = history.read(path)
        except (OSError, ValueError) as err:
            raise CliError(f"cannot read {path}: {err}") from None
        meta = next((e for e in entries if e["type"] == "meta" and e["f"] == "scenario"), None)
        if meta is None:
            raise CliError(f"{path} has no run description (meta entry)")
        verdict = checker.check(entries, meta["bound_s"], meta["lease_s"], transfers.load(args.run_dir, entries))
        print(json.dumps(verdict.to_json(), indent=2))
        return verdict.exit_code
    if args.check_determinism and args.engine != "virtual":
        raise CliError("--check-determinism needs --engine virtual (a wall run cannot be replayed)")
    if args.noise is not None and args.engine != "virtual":
        raise CliError("--noise needs --engine virtual: the wall engine's noise is the host's")
    paths.output_dir("--out", args.out)
    try:  # every file is validated before anything runs
        scenarios = [scenario.load(f) for f in args.files]
    except scenario.ScenarioError as err:
        raise CliError(str(err)) from None
    if args.noise is not None:
        scenarios = [scenario.with_noise(sc, args.noise) for sc in scenarios]
    if args.kernel is not None:
        scenarios = [scenario.with_kernel(sc, args.kernel) for sc in scenarios]
    runs = [(sc, s) for sc in scenarios for s in ([args.strategy] if args.strategy else sc.strategies)]
    for sc, s in runs:  # --kernel or --strategy may ask for a strategy the kernel cannot drain with
        try:
            scenario.check_kernel(sc.cluster.kernel, [s])
        except scenario.ScenarioError as err:
            raise CliError(f"{sc.name}: {err}") from None
    if args.engine == "virtual":
        return _run_virtual(args, runs)
    # The wall runner starts clusters over gRPC: loaded only for its runs (cli/__init__).
    from coordinator.tools.chaos import runner
    from coordinator.tools.cluster import ClusterError

    for sc in scenarios:
        if sc.cluster.noise != scenario.ClusterSpec.noise:
            print(
                f"{sc.name}: [cluster] noise = {sc.cluster.noise!r} applies under --engine virtual; a wall run's "
                "noise is its host's",
                file=sys.stderr,
            )
    progress = Progress(len(runs), sum(runner.estimate_s(sc) for sc, _ in runs))
    verdicts = []
    try:
        for index, (sc, strategy) in enumerate(runs):
            try:
                v = runner.run(sc, strategy, args.out, seed=args.seed, progress=progress, index=index)
            except ClusterError as err:
                raise CliError(f"{sc.name}/{strategy}: {err}") from None
            verdicts.append((sc.name, strategy, v))
    finally:
        progress.done()
    print(f"{'scenario':<28} {'strategy':<10} valid    drains ok/fail/info  lost dup stale")
    for name, strategy, v in verdicts:
        print(summary_row(name, strategy, v))
    print(f"run directories under {args.out}")
    codes = [v.exit_code for _, _, v in verdicts]
    return 1 if 1 in codes else 2 if 2 in codes else 0


def _run_virtual(args, runs) -> int:
    from coordinator.tools import determinism
    from coordinator.tools.chaos import virtual_runner

    verdicts, reports = [], []
    progress = Progress(len(runs), VIRTUAL_RUN_S * len(runs) * (2 if args.check_determinism else 1))
    try:
        for index, (sc, strategy) in enumerate(runs):
            progress.update(index, f"{sc.name}/{strategy}", "running")
            first = virtual_runner.execute(sc, strategy, args.seed)
            first.write(args.out)
            if args.check_determinism:
                progress.update(index, f"{sc.name}/{strategy}", "running again")
                second = virtual_runner.execute(sc, strategy, args.seed)
                reports.append((f"{sc.name}/{strategy}", determinism.compare(first.outcome(), second.outcome())))
            verdicts.append((sc.name, strategy, first.verdict))
    finally:
        progress.done()
    for name, report in reports:
        print(f"{name}:\n  " + report.describe().replace("\n", "\n  "))
    diverged = [name for name, report in reports if not report.identical]
    print(f"{'scenario':<28} {'strategy':<10} valid    drains ok/fail/info  lost dup stale")
    for name, strategy, v in verdicts:
        print(summary_row(name, strategy, v))
    print(f"run directories under {args.out} (engine virtual)")
    if diverged:
        print(f"not deterministic: {', '.join(diverged)}")
        return 1
    codes = [v.exit_code for _, _, v in verdicts]
    return 1 if 1 in codes else 2 if 2 in codes else 0


def summary_row(name: str, strategy: str, v) -> str:
    """One run's line of the summary table (`v`: a checker Verdict)."""
    d, a = v.stats.get("drains", {}), v.stats.get("audit") or {}
    st = v.stats.get("stale_commits", {})
    return (
        f"{name:<28} {strategy:<10} {str(v.valid).lower():<8} "
        f"{d.get('ok', 0):>6}/{d.get('fail', 0)}/{d.get('info', 0):<9} "
        f"{_known(a.get('lost')):>5} {_known(a.get('duplicated')):>3} {_known(st.get('applied')):>5}"
    )


def _known(value) -> str:
    """A figure of the summary, or "?" where the run could not get it (an audit that failed has
    lost = None: the verdict says why)."""
    return "?" if value is None else str(value)
