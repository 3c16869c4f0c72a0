"""What a user runs against a cluster: the `pcpsim` command and everything behind it.

- cli/        the `pcpsim` command: parser, and one module per command group
- topology    which role each CPU plays: the default layout, --isolated/--rt, an rt-app task set
- cluster     a local cluster: the coordinator and one process per CPU, on loopback
- prometheus  a local Prometheus server for a local cluster
- die_with_parent  how a child that is not pcpsim's (Prometheus) ends with its launcher
- schedule    the phases of a measured run and its seeded drain schedule
- compare_plan  what compare runs under either engine: its config, the trigger plan, the drain window
- compare     the same workload and drain schedule under each strategy, side by side (wall engine)
- compare_results, compare_table, compare_against, acceptance
              a phase's figures and the results file, the table compare prints, two results files'
              tables side by side, and the claims a results file must hold, whichever engine wrote it
- results_file  a compare results file read and checked once, field by field, for every view
- json_fields   whether a JSON value is what a type annotation says (results_file, chaos's readers)
- report, html_report, plots, htmlpage, svg, stats
              oslat, cyclictest and `rtla osnoise` views of a compare results file; its HTML page,
              PNGs and charts; percentiles
- progress    the progress line of a long command
- bench/      `pcpsim bench`: figures measured against a floor from the same run
- chaos/      scripted chaos: scenario, workload, nemesis, history, checker, runner; seed sweeps
- chaostoolkit/  a Chaos Toolkit driver for a running cluster
- the virtual engine's whole cluster (docs/engine.md): virtual_cluster (the CPUs and the coordinator
  in one process, and the faults' hooks), virtual_coordinator (one coordinator process's rules),
  virtual_host (a CPU's process as its agent sees it), virtual_peer (the CPUs as the drain driver
  reaches them), virtual_phase (one compare phase), virtual_compare (`compare --engine virtual`),
  determinism (`--check-determinism`), compare_seeds (`--seeds`: the medians and ranges of many)
Nothing in the coordinator process imports this package. The virtual engine's modules import no grpc,
not even through the wall ones (tests/unit/test_layering.py).
"""
