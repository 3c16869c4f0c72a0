"""The virtual-time core: what both drivers' virtual halves build on (docs/engine.md).

Layout (nothing here reads a wall clock, starts a thread or touches asyncio or gRPC; the only
source of randomness is rng's seeded tree: tests/unit/test_layering.py):
- clock.py  VirtualClock, and EventQueue: events run in (time, seq) order, like SimPy's
            (time, priority, id), so two events at one instant run in the order they were scheduled
- rng.py    RngTree: one seed, an independent Stream (a random.Random whose draws need no C library
            function) per stream name
- ieee.py   log and exp from IEEE basic operations: the same bits on every machine
- fpu.py    that doubles round once here (sets the x87 to double precision on 32-bit x86)
- net.py    SimNetwork: a message is delivered after a latency drawn from a seeded distribution; the
            nemesis's primitives (RPC fault rules, cuts, stopped and dead endpoints) at exact instants
- faults.py the RPC fault rules of node.shared.faults, decided without gRPC
- sigstop.py Sigstop: SIGSTOP, SIGCONT and SIGKILL of one virtual process (a node's or the
            coordinator's): what would run while it is stopped is held, and runs at SIGCONT in the
            order it fell due; nothing of a killed one runs
- noise.py  the host-noise model: timer slack on each wake-up, drawn from the bare timer's lateness
"""
