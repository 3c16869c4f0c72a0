"""What a user runs against a cluster: the `pcpsim` command and everything behind it.

- cli/        the `pcpsim` command: parser, and one module per command group
- cluster     a local cluster: the coordinator and one process per CPU, on loopback
- prometheus  a local Prometheus server for a local cluster
- schedule    the phases of a measured run and its seeded drain schedule
- compare     the same workload and drain schedule under each strategy, side by side
- compare_table  the table compare prints
- report      oslat, cyclictest and `rtla osnoise` views of a compare results file; plots its PNGs
- stats       percentiles and summaries
- bench/      `pcpsim bench`: figures measured against a floor from the same run
- chaos/      scripted chaos: scenario, workload, nemesis, history, checker, runner
Nothing in the coordinator process imports this package.
"""
