"""The node side of the virtual driver: the same CPU code, driven in virtual time (docs/engine.md).

Layout:
- fiber.py  Fiber: a greenlet that runs only when handed the baton, so code that blocks deep in a call
            stack it does not own (a task's step calls cpu.occupy; node.mm calls the zone) can wait in
            virtual time without being rewritten, and exactly one piece of code runs at a time
- cpu.py    VirtualCpu: node.cpu.Cpu with its waiting (_block, _wake, the modeled sleeps) on the
            event queue (node.sim.clock) instead of a condition variable and time.sleep
- zone.py   the zone as a virtual CPU sees it: the zone's rules (node.mm.zone_rules) in this process,
            behind a zone->lock that queues in virtual time, reached over the simulated network
            (node.sim.net); and DrainAllPages, the direct-reclaim request
- run.py    a few CPUs with their tasks and IRQs on one zone, run to a horizon, with an event log
"""
