"""Seed sweeps (docs/sweep.md): random fault schedules under virtual time, each failure shrunk to a
scenario file.

generate  seed -> a random Scenario within documented bounds (pure)
tomlfile  Scenario -> TOML text that scenario.load reads back to an equal Scenario
shrink    a failing Scenario -> a smaller one that still fails (pure over a predicate)
sweep     seeds -> outcomes, one process per core, in seed order; shards and their merge
rate      seeds per second, a figure for the bench
wall      --engine wall's runner: a scenario on a local cluster of real processes
"""
