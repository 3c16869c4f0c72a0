"""pcpsim's node: one simulated CPU as a process, and what both processes share.

Layout (core first; a layer imports only the layers above it in this list):
- mm/       the pure kernel model (pcp lists, buddy zone, watermarks, profiles, audit):
            standard library only, locks and the zone passed in by the caller
- api/      the wire contract: generated stubs (v1/), input validation, domain errors
- shared/   plumbing both processes use: config and flags, logging, server building,
            interceptors, security, faults, health, metrics exposition, streams, time base
- sim/      virtual time's parts: event queue and clock, seeded random tree, network, faults,
            the host-noise model (no threads, sleeps or wall-clock reads)
- rules: what a CPU decides, with no I/O, threads or clock of their own (docs/engine.md); both
  the wall process below and virtual/ drive them:
  eventlog         a bounded log of a CPU's recent timed events (what the tasks attribute noise to)
  sched            what runs next on the CPU (RT before queued work, IRQs, kworker, preemption)
  tasks            latency-sensitive tasks, housekeeping churn, IRQ sources, vmstat_update
  grants           a CPU's grants of its pcp pages to a remote drainer: tokens, leases, fencing
  remote_lock_rule the remote pcp lock drain's node half
  rcu_drain_rule   an rcu-swap drain's node half;  rcu_gp  quiescent states and grace periods
  agent_rule       membership: registration, heartbeats (their interval), the lease
  epoch_rule       fencing a replaced coordinator by its epoch
  identity         the node's names (incarnation, transfer ids) from a source of bits
  zone_retry_rule  when a zone request is sent again, and the zone's refusal (ZoneRefused)
  work_table       the work items queued on this CPU and not yet flushed, by id
- the wall CPU process, drivers of the rules above:
  cpu        the CPU thread: what runs on the CPU, and when
  rcu        quiescent states reported by the CPU thread (rcu-swap)
  workqueue  QueueWork and FlushWork over the work table, a future per item
  alloc      alloc_pages / free_pages as a task calls them, with the trylock + buddy fallback
  zone_client  the zone (ZoneOps) over a stream to the coordinator
  remote_lock  the remote side of drain_pages_zone: a lease on this CPU's pcp lock, fenced
  rcu_drain  the node's half of an rcu-swap drain
  agent      membership: heartbeats, the lease, rejoining after a failure
  epoch      the coordinator epoch the node has seen;  wall_ids  names from os.urandom
  rtapp      rt-app task sets: which CPUs run which latency tasks
  runtime    one CPU assembled from the parts above
  cpu_report what a CPU reports (GetStats' counters, its logged events), read by both engines
  metrics    the node's Prometheus collectors
  server     the gRPC servicer (the interconnect), thin over runtime
  wake_probe the bare timer that measures the host's wake-up noise floor
  __main__   `python -m node`
- virtual/  the same rules driven under virtual time: a CPU as a fiber, the zone and drains over
            sim's network, a whole cluster of CPUs in one process; it imports no grpc
node never imports coordinator (tests/unit/test_layering.py).
"""
