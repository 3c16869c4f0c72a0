"""The `pcpsim` command.

  pcpsim cluster up [--nodes N] [--isolated LIST] [--rt LIST] run a local cluster until Ctrl-C (default:
                                                              4 CPUs, isolated 2-3, RT on 3, as compare)
                   [--workload FILE]                          ... latency tasks from an rt-app task set
                   [--kernel K] [--strategy S]                ... with a kernel profile and default strategy
                   [--cost-model FILE]                        ... and modeled kernel costs from a TOML file
                   [--prometheus]                             ... and a local Prometheus scraping it
  pcpsim drain --strategy S [--force-all-cpus]                 drain_all_pages on a running cluster (S: workqueue,
                                                               remote, qpw; rcu-swap on an rcu-swap cluster)
  pcpsim cma-alloc --pages N [--start-pfn P]                   alloc_contig_range: drain, take the range
  pcpsim offline --pages N [--start-pfn P]                     offline_pages: zone_pcp_disable, forced drain
  pcpsim release --start-pfn P --pages N                       give a CMA or offline range back to the buddy
  pcpsim cpu offline|online N                                  CPU hotplug: drain from a survivor, recompute high
  pcpsim state [--json]                                        per-CPU pcp, zone, audit verdict
  pcpsim audit                                                 stop-the-world page audit
  pcpsim compare [--quick] [--seed S] [--json PATH]            strategies side by side
                 [--strategies workqueue,remote,rcu-swap,qpw] [--kernel K] [--trigger-mix cma=1]
                 [--workload FILE]                            ... latency tasks from an rt-app task set
                 [--engine virtual] [--check-determinism]     ... in one process under virtual time, run twice
                 [--noise model|quiet|none]                   ... the host-noise model: loaded, quiet (default), none
                 [--cpus N]                                   ... on a nohz_full machine of N CPUs (virtual)
                 [--event-log PATH]                           ... (virtual) its event log, to diff machines
  pcpsim report RESULTS.json [--out DIR] [--no-plots]          oslat/cyclictest/osnoise views and plots
                [--html OUT.html]                            ... and all of them as one page with hover values
  pcpsim bench [--quick] [--json PATH] [--engine virtual]      figures against their floors, as ratios
  pcpsim tokens DIR                                            fresh token files for a deployment
  pcpsim kernels [--json]                                      what each kernel profile (--kernel) models
  pcpsim chaos run FILE... [--strategy S] [--seed N] [--out D] scripted faults, checked page by page
                 [--engine wall|virtual] [--check-determinism] ... or in one process under virtual time
                 [--noise model|quiet|none]                   ... (virtual) every scenario's host-noise model
                 [--kernel K]                                 ... every scenario under kernel profile K
  pcpsim chaos check RUN_DIR                                   the checker again, on a run's history
  pcpsim chaos timeline RUN_DIR [--out OUT.html]               a run's operations and faults as a page
  pcpsim replay count-race|up-trylock|bulk-free [--kernel K,K] a post-merge pcp bug, replayed on the model
                [--cpus N [--seed S]]                         ... bulk-free: N CPUs' storm, virtual engine

Commands that talk to a running cluster find it through the state file that
`cluster up` writes (--state, $PCPSIM_STATE, default .pcpsim/cluster.json) or
through --coordinator HOST:PORT. They authenticate with the operator token file the
state file names (or --token-file / $PCPSIM_TOKEN_FILE), and dial with TLS if the state
file or --tls-ca says so.
"""

import argparse

from coordinator.drain.record import STRATEGIES
from coordinator.tools import compare_plan
from coordinator.tools.bench import steps as bench_steps
from coordinator.tools.bench import virtual_scale as bench_virtual_scale
from coordinator.tools.cli import flags, parser_cluster
from coordinator.tools.cli import sweep as sweep_cli
from node.mm import bugs
from node.mm import profile as profiles
from node.shared.config import int_range
from node.sim import noise as noise_models


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pcpsim",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    parser_cluster.add_parsers(sub)

    cmp_ = sub.add_parser("compare", help="run the same workload under each strategy and compare")
    cmp_.add_argument("--quick", action="store_true", help="25 s of measurement per phase instead of 60 s")
    cmp_.add_argument("--seed", type=flags.seed, help="the seed every phase starts from (default 1)")
    cmp_.add_argument(
        "--seeds",
        type=flags.seeds,
        help="with --engine virtual: compare once per seed (N-M, N, or a comma list of both) and print each "
        "figure's median and range over them, each claim held on k of n seeds",
    )
    cmp_.add_argument(
        "--json",
        metavar="PATH",
        help="write the full results here, and plots next to it (PATH-wakeup.png, PATH-drain.png); with "
        "--seeds each seed's results to PATH-seedN.json, no plots (pcpsim report draws a file's)",
    )
    cmp_.add_argument(
        "--measure-s",
        type=int_range(1, compare_plan.MAX_MEASURE_S),
        help=f"seconds of measurement per phase, 1..{compare_plan.MAX_MEASURE_S}",
    )
    cmp_.add_argument(
        "--drain-interval-ms",
        type=int_range(1, compare_plan.MAX_MEASURE_S * 1000),
        default=150,
        help="drain schedule period, at most --measure-s (default %(default)s)",
    )
    cmp_.add_argument("--run-dir", help="where each phase's process logs go (default: a temp dir)")
    cmp_.add_argument("--workload", metavar="FILE", type=flags.workload, help=flags.WORKLOAD_HELP)
    cmp_.add_argument(
        "--cpus",
        metavar="N",
        type=flags.positive_int,
        help="with --engine virtual: a nohz_full machine of N CPUs (32 to 1024): one in 16 housekeeping, one "
        "in 32 running the preemptible latency task, one in 32 the RT task, the rest isolated and idle",
    )
    cmp_.add_argument(
        "--cost-model",
        metavar="FILE",
        type=flags.cost_model_file,
        help=flags.COST_MODEL_HELP + "; its time_scale must be 250",
    )
    cmp_.add_argument(
        "--strategies",
        type=flags.strategy_list,
        help="comma-separated strategies to compare, each a phase (default "
        f"{','.join(compare_plan.DEFAULT_STRATEGIES)}, or those the kernel allows; known: "
        f"{','.join(STRATEGIES)})",
    )
    cmp_.add_argument(
        "--kernel",
        choices=profiles.LIVE,
        default=profiles.DEFAULT_KERNEL,
        help="kernel profile every phase's CPUs run (default %(default)s)",
    )
    cmp_.add_argument(
        "--engine",
        choices=flags.ENGINES,
        default="wall",
        help="wall: a local cluster of processes per phase, timed by the host (default); virtual: every "
        "phase in this process under virtual time, kernel time exact and one seed the same bytes "
        "(docs/engine.md; it starts no processes, so not with --run-dir)",
    )
    cmp_.add_argument(
        "--noise",
        choices=noise_models.NOISE,
        help="with --engine virtual: the host-noise model of every CPU's timed wake-ups (node.sim.noise): "
        "quiet, the bare timer probe's lateness measured on a quiet host, one seeded stream per CPU "
        "(default: near a real isolated CPU's and the wall engine's on a quiet machine); model, the same "
        "probe on a loaded host; none, every wake-up on time but for the model's own delays",
    )
    cmp_.add_argument(
        "--check-determinism",
        action="store_true",
        help="with --engine virtual: run the whole compare twice, print the sha256 of its results and "
        "event log, and name the first divergent event (exit 1 if the runs diverge)",
    )
    cmp_.add_argument(
        "--event-log",
        metavar="PATH",
        help="with --engine virtual: write the run's event log here, one event per line (the first run's with "
        "--check-determinism), to diff against the same seed's log from another machine or commit",
    )
    cmp_.add_argument(
        "--trigger-mix",
        type=flags.trigger_mix,
        default=(("demand", 1.0),),
        help="what each scheduled event is, by weight: demand (drain_all_pages), cma "
        "(alloc_contig_range of a pageblock) or offline (offline_pages), e.g. demand=1,cma=1 "
        "(default demand=1); cma=1 is CMA allocations on a busy machine",
    )

    rep = sub.add_parser(
        "report",
        help="oslat-, cyclictest- and osnoise-style tables and plots from a `compare --json` results file",
        description="Print the wake-up latency histogram per latency CPU and phase (oslat), one "
        "cyclictest summary line per latency task and phase, and per-CPU noise by cause "
        "(rtla osnoise top); write PNG plots of the wake-up latency and drain_all_pages "
        "duration distributions. Latencies are shown in kernel us (wall / time_scale).",
    )
    rep.add_argument("results", metavar="RESULTS.json", help="file written by `pcpsim compare --json`")
    rep.add_argument("--out", metavar="DIR", help="where the plots go (default: next to RESULTS.json, named after it)")
    rep.add_argument("--no-plots", action="store_true", help="print the tables only")
    rep.add_argument("--html", metavar="OUT.html", help="also write every view and plot as one self-contained page")
    rep.add_argument(
        "--against",
        metavar="OTHER.json",
        help="instead, set compare's table of RESULTS.json (A) and OTHER.json (B) side by side in kernel us, "
        "each strategy both ran, and list what the two runs were asked differently",
    )

    ben = sub.add_parser(
        "bench",
        help="measure pcpsim against the floor of Python, gRPC and the machine",
        description="Measure, in one run, each figure against its floor and print figure, "
        "floor, ratio and target (ok or MISSED). Exits 0 even when a target is missed.",
    )
    ben.add_argument("--quick", action="store_true", help="fewer samples and CPUs (N up to 8); under 3 minutes")
    ben.add_argument(
        "--json",
        metavar="PATH",
        help="write the figures (name, value, floor, ratio, target, ok) and raw data here, "
        "and the scaling plot next to it (PATH-scaling.png)",
    )
    ben.add_argument("--run-dir", help="where the clusters' process logs go (default: a temp dir)")
    ben.add_argument(
        "--engine",
        choices=bench_steps.ENGINES,
        default="wall",
        help="what the scale figure runs on: wall (default: 64 node processes; quick 16) or virtual "
        "(a compare phase of `compare --cpus N` under virtual time at 256 and 1,024 CPUs; quick 32)",
    )
    ben.add_argument(
        "--virtual-strategy",
        choices=tuple(STRATEGIES),
        default=bench_virtual_scale.STRATEGY,
        help="the strategy of --engine virtual's compare phases (default %(default)s)",
    )
    ben.add_argument(
        "--only",
        type=flags.bench_steps,
        default=bench_steps.STEPS,
        metavar="STEP[,STEP]",
        help="run only these steps: " + ", ".join(bench_steps.STEPS) + " (default: all)",
    )

    chaos = sub.add_parser("chaos", help="scripted faults against a local cluster, and a checker of the history")
    chsub = chaos.add_subparsers(dest="chaos_command", required=True, metavar="ACTION")
    crun = chsub.add_parser(
        "run",
        help="run scenario files (deploy/chaos/*.toml) against each of their strategies",
        description="Run each scenario on a fresh local cluster for each strategy it names "
        "(or --strategy), write each run's directory (history, logs, metrics, verdict) and "
        "print the verdicts. Exit 0: all valid; 1: some run invalid; 2: some unknown.",
    )
    crun.add_argument("files", nargs="+", metavar="FILE")
    crun.add_argument("--strategy", choices=sorted(STRATEGIES), help="this strategy only")
    crun.add_argument("--seed", type=flags.seed, help="override every scenario's seed")
    crun.add_argument("--out", default=".pcpsim/chaos", help="where run directories go (default %(default)s)")
    crun.add_argument(
        "--engine",
        choices=flags.ENGINES,
        default="wall",
        help="wall: real processes in wall time (default); virtual: the whole cluster in this process "
        "under virtual time, every run reproducible from its seed (docs/engine.md)",
    )
    crun.add_argument(
        "--check-determinism",
        action="store_true",
        help="(--engine virtual) run each scenario and strategy twice: print both digests and whether "
        "the runs are byte-identical, else their first divergent event; exit 1 on a divergence",
    )
    crun.add_argument(
        "--noise",
        choices=noise_models.NOISE,
        help="(--engine virtual) the host-noise model of every CPU's timed wake-ups (node.sim.noise), in "
        "place of each scenario's [cluster] noise (default none): model, a loaded host's timer lateness; "
        "quiet, a quiet host's; none, every wake-up on time but for the model's own delays",
    )
    crun.add_argument(
        "--kernel",
        choices=profiles.LIVE,
        help="the kernel profile every process runs (`pcpsim kernels`), in place of each scenario's [cluster] "
        "kernel (default 6.1); a strategy that cannot drain under it is refused before anything runs",
    )
    ccheck = chsub.add_parser(
        "check",
        help="check the history of a past run again",
        description="Re-run the checker on RUN_DIR/history.jsonl. Exit 0 valid, 1 invalid, 2 unknown.",
    )
    ccheck.add_argument("run_dir", metavar="RUN_DIR")
    ctime = chsub.add_parser(
        "timeline",
        help="write a past run's timeline.html again",
        description="Draw RUN_DIR's operations and faults on one time axis, its verdict on top and "
        "each operation's latency with the faults shaded, as one self-contained page (`chaos run` "
        "writes it into every run directory).",
    )
    ctime.add_argument("run_dir", metavar="RUN_DIR")
    ctime.add_argument("--out", metavar="OUT.html", help="where to write it (default RUN_DIR/timeline.html)")
    sweep_cli.add_parsers(chsub)

    rpl = sub.add_parser(
        "replay",
        help="replay a pcp bug found after the merge on the pure model, under its bug and fix profiles",
        description="Run the kernel's steps where the bug bites on one CPU's pcp and zone (node.mm.bugs) and "
        "check them: up-trylock, an IRQ in a CONFIG_SMP=n drain (038a102535eb); bulk-free, the pages freed "
        "under one zone->lock hold by the free path's flush (Hahn's batching series). bulk-free --cpus N "
        "(N > 1) runs the storm instead: N virtual CPUs (the virtual-time engine) flush at one instant and "
        "queue on zone->lock; its check also bounds the longest wait for the lock. Exit 0: every "
        "profile passed; 1: the check failed for one (its bug is there).",
    )
    rpl.add_argument("replay", choices=sorted(bugs.REPLAYS), metavar="{" + ",".join(sorted(bugs.REPLAYS)) + "}")
    rpl.add_argument(
        "--kernel",
        type=flags.kernel_list,
        help="comma-separated kernel profiles to replay under (default: the replay's bug and fix variants, "
        + "; ".join(f"{name}: {' and '.join(kernels)}" for name, kernels in bugs.VARIANTS.items())
        + f"; bulk-free --cpus N: {' and '.join(bugs.STORM_VARIANTS)})",
    )
    rpl.add_argument(
        "--cpus",
        type=flags.positive_int,
        default=1,
        metavar="N",
        help="bulk-free only: N > 1 runs the many-CPU storm on the virtual engine (2 to 1024; the report's "
        "machine had 316); default 1, the one-CPU replay",
    )
    rpl.add_argument(
        "--seed",
        type=flags.seed,
        help="with --cpus N > 1: the storm's seed (default 1); the same seed gives the same output",
    )

    tok = sub.add_parser(
        "tokens",
        help="write fresh token files (coordinator, node, operator) for a deployment",
        description="Generate the node, coordinator and operator secrets into DIR/coordinator.token, "
        "DIR/node.token (the operator and coordinator secrets only as their SHA-256) and "
        "DIR/operator.token, mode 0600. No secret is printed. `cluster up` does this by itself.",
    )
    tok.add_argument("dir", metavar="DIR")

    ker = sub.add_parser(
        "kernels",
        help="what each kernel profile (--kernel) models: locks, drains, pcp->high, lists",
        description="A table of every kernel profile a cluster or compare may run (--kernel), read from the "
        "profile table the CPUs run (node.mm.profile); each column is explained under it.",
    )
    ker.add_argument("--json", action="store_true", help="the table as JSON, with each column's meaning")
    return p
