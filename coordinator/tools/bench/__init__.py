"""`pcpsim bench`: how close pcpsim runs to the floor of Python, gRPC and the machine.

- figure   a figure: a value against a floor measured in the same run, its ratio and target
- figures  figures 1-5 (fast path, metrics overhead, remote drain, zone throughput, noise) and the run
- scale    figure 6: many CPUs and a coordinator on this machine, drained every second
- plot     the drain_all_pages scaling curve as a PNG
"""
