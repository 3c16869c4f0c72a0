"""Histogram buckets both processes' latency metrics use (node.metrics, coordinator.metrics).

They resolve the model's time base (node.shared.timebase): the no-drain noise floor is
~0.1-1 ms, drain interference 2-20 ms, RT busy phases (and the work queued behind them)
up to 150 ms.
"""

LATENCY_BUCKETS = (
    50e-6,
    100e-6,
    200e-6,
    300e-6,
    500e-6,
    750e-6,
    1e-3,
    1.5e-3,
    2e-3,
    3e-3,
    5e-3,
    7.5e-3,
    10e-3,
    15e-3,
    20e-3,
    30e-3,
    50e-3,
    100e-3,
    200e-3,
)
# Remote lock holds and waits, queue delays behind an RT task, and a CPU's drain can pass 200 ms.
LONG_LATENCY_BUCKETS = (*LATENCY_BUCKETS, 0.5, 1.0, 2.5)
