"""drain_all_pages: the coordinator's drain of CPUs' pcp lists, one module per concept.

- record     strategy and trigger names, CpuDrain and DrainRecord (what a drain reports)
- strategy   what a strategy is and what it sees of the drainer and the zone (DrainerView, ZoneFrees)
- control    the drainer's side of a node's PcpControl stream: request, commit, the chaos trap
- workqueue  up to v5.19: queue drain work on each CPU, then flush each
- remote     v6.0+: drain_pages_zone on each remote CPU under its pcp lock (lease + fencing)
- rcu_swap   Saenz Julienne's unmerged design: swap list sets, wait a grace period, free
- qpw        the pw_queue_on proposal (not merged): remote if any CPU is isolated, else workqueue
- drainer    Drainer: pcpu_drain_mutex, cpus_with_pcps, drain_all_pages, drain_pages
Strategies import strategy, control and record; only drainer imports the strategies (and hands
qpw the two it picks between): no cycle.
"""
