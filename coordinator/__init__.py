"""pcpsim's control plane.

Layout: zone_service (the buddy allocator behind zone->lock, page ownership),
membership (registration, heartbeats), drain (drain_all_pages and its strategies),
audit (stop-the-world conservation check), metrics (Prometheus: drains, zone,
membership), server (the gRPC servicer), __main__ (the coordinator process);
cluster (spawning a local cluster), compare, stats and cli (the `pcpsim` command)
build on a running cluster.
"""
