"""The node side of the virtual driver: the same CPU code, driven in virtual time (docs/engine.md).

Layout:
- fiber.py     Fiber: a greenlet that runs only when handed the baton, so code that blocks deep in a
               call stack it does not own (a task's step calls cpu.occupy; node.mm calls the zone)
               can wait in virtual time without being rewritten, and one piece of code runs at a time
- strand.py    waiting off a CPU: a Strand (a fiber that is no CPU, serving one request) and a Wait
               (one waiter, until ended or timed out)
- cpu.py       VirtualCpu: node.cpu.Cpu with its waiting (_block, _wake, the modeled sleeps) on the
               event queue (node.sim.clock) instead of a condition variable and time.sleep; it builds
               the waiting primitives below for itself (its RCU, its pcp->lock), and holds its process's
               Sigstop (node.sim.sigstop), which its strands, agent and leases share
- rcu.py       VirtualRcuCpu: a CPU's quiescent states (node.rcu_gp) with grace-period waiters in
               virtual time
- pcp_lock.py  VirtualPcpLock: pcp->lock, whose blocking acquire suspends a fiber and whose trylock
               fails while a drainer holds it
- drain.py     the node halves of the remote drains (node.grants, remote_lock_rule, rcu_drain_rule)
               waiting in virtual time
- zone.py      the zone as a virtual CPU sees it: the zone's rules (node.mm.zone_rules) in this
               process, behind a zone->lock that queues in virtual time, reached over the simulated
               network (node.sim.net); and DrainAllPages, the direct-reclaim request
- zone_rpc.py  a zone round trip under the network's fault rules (chaos runs): sent again until its
               outcome is known, as node.zone_client does
- agent.py     the node's agent (node.agent_rule): heartbeats and Register attempts as events
- run.py       VirtualCluster: a few CPUs with their tasks and IRQs on one zone, run to a horizon,
               with an event log
- bulk_free_storm.py  many CPUs flushing large pcp frees into one zone at once (`pcpsim replay
               bulk-free`)
"""
