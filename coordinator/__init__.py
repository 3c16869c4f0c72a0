"""pcpsim's coordinator: the control plane process, and the tools a user runs against a cluster.

The process (`python -m coordinator`):
- zone_service  the zone as a service: the wall driver of node.mm.zone_rules (page ownership,
                idempotent transfers, watermarks) behind zone->lock
- membership    who is online, heartbeats, leases, heartbeat pacing
- registration  what a CPU joining changes: a replaced process's pages, the recovery claim
- hotplug       the dead-CPU path (Reaper, page_alloc_cpu_dead)
- pageset       pcp->high, high_max and batch as the online CPUs set them (zone_pcp_update)
- cpu_hotplug   taking a living CPU offline and back
- drain/        drain_all_pages and drain_pages, one module per strategy
- contig        alloc_contig_range (CMA) and memory offline: the triggers that take a PFN range
- recovery      rebuilding the zone after a coordinator restart, from what the nodes report
- audit         the stop-the-world conservation check
- metrics       the coordinator's Prometheus collectors
- server        the gRPC servicer, thin over the modules above
- __main__      assembling the process
tools/ (the `pcpsim` command and what it runs) drives a cluster over gRPC; the process never
imports it. From node the process takes only node.mm, node.api and node.shared
(tests/unit/test_layering.py).
"""
