"""Commands that measure or read measurements: `compare` (strategies side by side), `report`
(a compare results file as oslat, cyclictest and osnoise would show it) and `bench` (figures
against their floors)."""

import dataclasses
import json
import os
import resource
import time
from typing import Any

from coordinator.tools import (
    acceptance,
    compare_against,
    compare_plan,
    compare_results,
    compare_seeds,
    compare_table,
    html_report,
    htmlpage,
    plots,
    report,
    results_file,
    virtual_compare,
    virtual_phase,
)
from coordinator.tools.bench import figure as bench_figure
from coordinator.tools.cli import paths
from coordinator.tools.cli.errors import CliError
from coordinator.tools.topology import workload_roles
from coordinator.tools.virtual_cluster import machine_roles
from node import rtapp
from node.sim import noise as noise_models


def cmd_compare(args) -> int:
    if args.check_determinism and args.engine != "virtual":
        raise CliError("--check-determinism needs --engine virtual: runs timed by the host are not reproducible")
    if args.engine == "virtual" and args.run_dir:
        raise CliError("--run-dir: the virtual engine starts no processes and writes no logs")
    if args.noise is not None and args.engine != "virtual":
        raise CliError("--noise needs --engine virtual: the wall engine's noise is the host's")
    if args.event_log is not None and args.engine != "virtual":
        raise CliError("--event-log needs --engine virtual: the wall engine's processes keep no event log")
    paths.output_file("--json", args.json)  # refused before the runs
    paths.output_file("--event-log", args.event_log)
    paths.distinct_files(("--json", args.json), ("--event-log", args.event_log))
    paths.output_dir("--run-dir", args.run_dir)
    if args.seeds is not None:
        if args.engine != "virtual":
            raise CliError("--seeds needs --engine virtual: a wall compare takes minutes a seed, timed by the host")
        if args.seed is not None:
            raise CliError("--seed and --seeds: give one")
        if args.check_determinism:
            raise CliError("--check-determinism checks one seed: give it --seed, not --seeds")
        if args.event_log is not None:
            raise CliError("--event-log writes one seed's log: give it --seed, not --seeds")
    noise = args.noise or noise_models.COMPARE_DEFAULT
    measure_s = args.measure_s or (compare_plan.QUICK_MEASURE_S if args.quick else compare_plan.FULL_MEASURE_S)
    workload: dict[str, Any] = {}
    if args.cpus is not None:
        if args.engine != "virtual":
            raise CliError(
                "--cpus needs --engine virtual: the wall engine's CPUs are processes, laid out by --workload"
            )
        if args.workload is not None:
            raise CliError("--cpus lays out the machine itself: give it or --workload, not both")
        try:
            workload = {"roles": tuple(machine_roles(args.cpus))}
        except ValueError as err:
            raise CliError(f"--cpus: {err}") from None
    if args.workload is not None:
        try:
            workload = {"roles": tuple(workload_roles(args.workload)), "workload": args.workload.source}
        except rtapp.WorkloadError as err:
            raise CliError(f"--workload {args.workload.source}: {err}") from None
    try:
        config = compare_plan.CompareConfig(
            seed=1 if args.seed is None else args.seed,
            measure_s=float(measure_s),
            drain_interval_s=args.drain_interval_ms / 1000.0,
            kernel=args.kernel,
            trigger_mix=args.trigger_mix,
            strategies=args.strategies or compare_plan.default_strategies(args.kernel),
            cost_model=args.cost_model,
            **workload,
        )
        if args.engine == "virtual":
            virtual_phase.options(config, noise)  # a task set or cost file it cannot read, before anything runs
    except ValueError as err:
        raise CliError(str(err)) from None
    if args.seeds is not None:
        return _compare_seeds(config, noise, args.seeds[1], args.json)
    determinism = None
    started = time.perf_counter()  # for the virtual engine's line below: host facts stay out of the results
    if args.engine == "virtual":
        try:
            if args.check_determinism:
                determinism = virtual_compare.check_determinism(config, noise)
                result, events = json.loads(determinism.first.results), determinism.first.events
            else:
                run = virtual_compare.run_virtual_compare(config, keep_log=args.event_log is not None, noise=noise)
                result, events = run.results, run.events
        except virtual_phase.PhaseOverrun as err:
            raise CliError(str(err)) from None
        if args.event_log is not None:
            try:
                with open(args.event_log, "w", encoding="utf-8", newline="\n") as f:
                    f.write(events)
            except OSError as err:  # a full disk, say: checked paths can still fail to take the bytes
                raise CliError(f"cannot write --event-log {args.event_log}: {err.strerror or err}") from None
    else:
        # The wall engine's modules start processes over gRPC: loaded only for its runs (cli/__init__).
        from coordinator.tools import compare
        from coordinator.tools.cluster import ClusterError

        try:
            result = compare.run_compare(config, args.run_dir)
        except ClusterError as err:
            raise CliError(str(err)) from None
    print(compare_table.format_table(result))
    print(acceptance.format_claims(acceptance.claims(result)))  # the same claims on either engine's results
    if args.engine == "virtual":
        print(
            f"virtual engine: {sum(result['events'].values()):,} events over {len(result['config']['roles'])} CPUs in "
            f"{time.perf_counter() - started:.1f}s of wall time, peak RSS "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB"  # Linux: kilobytes
        )
    if args.event_log is not None:
        print(f"event log written to {args.event_log} ({events.count(chr(10)):,} events)")
    if args.json:
        try:
            compare_results.write_json(result, args.json)
            written = plots.write_plots(result, args.json)
        except OSError as err:
            raise CliError(f"cannot write --json {args.json} or its plots: {err.strerror or err}") from None
        print(f"results written to {args.json}")
        print("plots written to " + ", ".join(written))
    if determinism is not None:
        print(determinism.describe())
        if not determinism.identical:
            return 1
    return 0 if _audits_clean(result) else 1


def _audits_clean(result: dict) -> bool:
    """Every strategy's audit ok: compare's exit status."""
    return all(s["audit"]["ok"] for s in result["strategies"].values())


def _compare_seeds(config: compare_plan.CompareConfig, noise: str, seeds: list[int], json_path: str | None) -> int:
    """compare --engine virtual once per seed (coordinator.tools.compare_seeds)."""
    results, all_clean = [], True
    for seed in seeds:
        started = time.perf_counter()
        try:
            result = virtual_compare.run_virtual_compare(dataclasses.replace(config, seed=seed), noise=noise).results
        except virtual_phase.PhaseOverrun as err:
            raise CliError(f"seed {seed}: {err}") from None
        results.append(result)
        clean = _audits_clean(result)
        all_clean = all_clean and clean
        line = f"seed {seed}: {sum(result['events'].values()):,} events in {time.perf_counter() - started:.1f}s"
        if json_path:
            path = compare_seeds.seed_path(json_path, seed)
            compare_results.write_json(result, path)
            line += f", results in {path}"
        print(line + ("" if clean else ", an audit NOT clean"), flush=True)
    print(compare_seeds.format_table(seeds, results))
    print(compare_seeds.format_claims(seeds, results))
    return 0 if all_clean else 1


def cmd_report(args) -> int:
    if args.against and (args.out is not None or args.html is not None or args.no_plots):
        raise CliError("--against prints a table only: drop --out, --html and --no-plots")
    # Before anything is printed or written; the plots' default place is next to RESULTS.json.
    plots_dir = os.path.dirname(os.path.abspath(args.results)) if args.out is None and not args.no_plots else args.out
    paths.output_dir("--out", plots_dir)
    paths.output_file("--html", args.html)
    try:
        result = results_file.load_results(args.results)
        other = results_file.load_results(args.against) if args.against else None
    except results_file.ReportError as err:
        raise CliError(str(err)) from None
    if other is not None:
        try:
            print(compare_against.format_against(result, other, args.results, args.against))
        except compare_against.NotComparable as err:
            raise CliError(str(err)) from None
        return 0
    print(report.format_report(result))
    if not args.no_plots:
        try:
            written = plots.write_plots(result, args.results, args.out)
        except OSError as err:
            raise CliError(f"cannot write plots: {err}") from None
        print("\nplots written to " + ", ".join(written))
    if args.html is not None:
        try:
            htmlpage.write(args.html, html_report.render(result, args.results))
        except OSError as err:
            raise CliError(f"cannot write {args.html}: {err.strerror or err}") from None
        print(f"page written to {args.html}")
    return 0


def cmd_bench(args) -> int:
    paths.output_file("--json", args.json, make_dirs=True)
    paths.output_dir("--run-dir", args.run_dir)
    from coordinator.tools.bench import figures as bench  # its steps start clusters over gRPC
    from coordinator.tools.cluster import ClusterError

    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    plot = (os.path.splitext(args.json)[0] + "-scaling.png") if args.json else None
    try:
        result = bench.run_bench(args.quick, args.run_dir, plot, args.engine, args.only, args.virtual_strategy)
    except ClusterError as err:
        raise CliError(str(err)) from None
    if args.json:  # before printing: a reader that closes stdout early (| head) must not lose the results
        bench_figure.write_json(result, args.json)
    print(bench_figure.format_table(result["figures"]))
    if args.json:
        drawn = plot is not None and os.path.exists(plot)  # the scaling step may not have run (--only)
        print(f"results written to {args.json}" + (f"; scaling plot {plot}" if drawn else ""))
    return 0
