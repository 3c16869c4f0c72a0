"""`pcpsim bench`: how close pcpsim runs to the floor of Python, gRPC and the machine.

- figure     a figure: a value against a floor measured in the same run, its ratio and target
- figures    the run: every figure in turn, and the JSON result (what each figure measures)
- fast_path  1: the pcp fast path, and the node's metrics on it
- drain_one  2: the coordinator's remote drain of one CPU against a stream round trip
- scaling    3: drain_all_pages against the number of CPUs, per strategy
- noise      4: the latency task's wake-up lateness with no drains, against a bare timer
- zone       5: the zone service's throughput from many client processes
- scale      6: many CPUs and a coordinator on this machine, drained every second
- engine     7, 8: the virtual engine's CPU time per event against a heapq pair, its speed against the wall engine
- streams    the stream round trips and tiny-time-scale clusters the floors are taken on
- plot       the drain_all_pages scaling curve as a PNG
"""
