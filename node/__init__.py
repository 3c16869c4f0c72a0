"""pcpsim's node: one simulated CPU as a process, and what both processes share.

Layout (core first; a layer imports only the layers above it in this list):
- mm/       the pure kernel model (pcp lists, buddy zone, watermarks, profiles, audit):
            standard library only, locks and the zone passed in by the caller
- api/      the wire contract: generated stubs (v1/), input validation, domain errors
- shared/   plumbing both processes use: config and flags, logging, server building,
            interceptors, security, faults, health, metrics exposition, streams, time base
- the CPU process itself:
  cpu        the CPU thread: what runs on the CPU, and when (RT before queued work, IRQs, kworker)
  tasks      latency-sensitive tasks, housekeeping churn, IRQ sources
  rcu        quiescent states reported by the CPU thread (rcu-swap)
  workqueue  the work items queued on this CPU and not yet flushed (QueueWork, FlushWork)
  alloc      alloc_pages / free_pages as a task calls them, with the trylock + buddy fallback
  zone_client  the zone (ZoneOps) over a stream to the coordinator
  remote_lock  the remote side of drain_pages_zone: a lease on this CPU's pcp lock, fenced
  rcu_drain  the node's half of an rcu-swap drain
  agent      membership: heartbeats, the lease, rejoining after a failure
  runtime    one CPU assembled from the parts above
  metrics    the node's Prometheus collectors
  server     the gRPC servicer (the interconnect), thin over runtime
  wake_probe the bare timer that measures the host's wake-up noise floor
  __main__   `python -m node`
node never imports coordinator (tests/unit/test_layering.py).
"""
