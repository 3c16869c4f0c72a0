"""What a measured run does and when: the phases of `pcpsim compare` and the seeded drain schedule.

Shared by compare (which runs them), report (which prints the phases in this order) and the
chaos workload (which drains on the same schedule), so none of them imports another.
"""

from coordinator.drain.record import STRATEGIES
from node.sim.rng import Stream

PHASES = ("noise_floor", *STRATEGIES)  # every phase there is, in report order


def drain_schedule(seed: int, interval: float, duration: float) -> list[float]:
    """Offsets (seconds from the start of measurement) of the drains: on average one per
    `interval`, each gap drawn from [interval/2, 3*interval/2] with a seeded generator.
    The jitter keeps the schedule from locking onto the RT task's period (with a fixed
    150 ms gap and a 250 ms period, drains would only ever meet five phases of it), and
    the seed makes it the same for every strategy."""
    rng = Stream(f"drains:{seed}")
    offsets, t = [], 0.0
    while t < duration:
        offsets.append(t)
        t += interval * rng.uniform(0.5, 1.5)
    return offsets
