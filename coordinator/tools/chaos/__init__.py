"""Scripted chaos, Jepsen/Maelstrom style: a workload, a nemesis and a checker as separate
parts, joined only by the history every operation and fault is written to.

- scenario: the TOML files that describe a run (deploy/chaos/*.toml);
- scenario_fields: the readers of a scenario file's fields, each refusing a bad one by name;
- history: the append-only record (JSON lines) of invokes, completions and faults;
- entry_shape: what a history entry must hold for the checker and the timeline, checked as it is read;
- plan: what both engines' runs do and write down: the seeded schedule, the history's entries, timings;
- workload: what the run asks of the cluster (drain_all_pages on a seeded schedule);
- nemesis: the faults and their heals, with real signals and run-time RPC faults;
- lock_watch: the nemesis's reads of the pcp locks a coordinator held when it stopped itself;
- epoch_probe: the nemesis's reads of the coordinator epochs: the state directory's, and a node's answer to an old one;
- processes: what the nemesis and the runner learn of the cluster's processes from outside them;
- checker: the verdict, from the history and the transfer logs alone;
- transfers: the transfer logs (node.shared.transfer_log) replayed: one owner per page at a time;
- drains_reached: each drain's reply against the `drain` lines its CPUs logged, the strategy's way;
- runner: one scenario against one strategy, end to end;
- timeline: a run directory's timeline.html;
- virtual_runner, virtual_nemesis, virtual_workload, virtual_records: the same run in one process under
  virtual time (docs/engine.md), its nemesis and workload on the simulated network, and what it records;
- sweep/: seed sweeps: generated scenarios, shards, the shrinker (docs/sweep.md).
"""
