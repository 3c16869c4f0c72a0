"""drain_all_pages: the coordinator's drain of CPUs' pcp lists, one module per concept.

Rules (no I/O, no waiting: they yield effects, docs/engine.md rule 5):
- effects    what a rule asks its driver for: Send, Call, Sleep, Gather, StopHere, ZoneLocked, DeclareDead,
             Lock/Unlock; Failed, how a lost request comes back
- record     strategy and trigger names, CpuDrain and DrainRecord (what a drain reports)
- strategy   what a strategy is and what it sees of the drainer (DrainerView)
- control    the drainer's side of a node's PcpControl stream: request, commit (retries, revocation,
             declare dead once the lease is provably over)
- workqueue  up to v5.19: queue drain work on each CPU, then flush each
- remote     v6.0+: drain_pages_zone on each remote CPU under its pcp lock (lease + fencing)
- rcu_swap   Saenz Julienne's unmerged design: swap list sets, wait a grace period, free
- qpw        the pw_queue_on proposal (not merged): remote if any CPU is isolated, else workqueue
- drain_all  drain_all_pages and drain_pages: pcpu_drain_mutex, cpus_with_pcps, the strategy, the record
Drivers:
- wall       the effects on asyncio and gRPC, in the coordinator process (faults, the SIGSTOP trap)
- drainer    Drainer: the coordinator process's pcpu_drain_mutex and history, drains on the wall driver
- virtual    the effects on node.sim's event queue and simulated network, in virtual time
- virtual_ends  what the virtual driver reaches: each CPU's half as a Peer (Answer, Later, Refusal), the
             zone service as a LockedZone
Strategies import strategy, control, effects and record; only drain_all imports the strategies (and
hands qpw the two it picks between): no cycle.
"""
