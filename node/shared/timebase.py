"""The time base and the cost model: how kernel time maps onto wall time here.

Kernel work takes tens of nanoseconds to tens of microseconds; on this machine a
Python timer is only good to ~0.1-0.3 ms (p50-p99 lateness of a thread waiting on a
condition, measured with four such processes side by side). So pcpsim scales kernel
time up by TIME_SCALE: 1 kernel microsecond lasts TIME_SCALE microseconds of wall
time (0.25 ms at the default 250). Every modeled cost below is a kernel-time figure;
the component that pays it *occupies* its CPU (or the zone lock) for cost * scale
of wall time with a blocking sleep, which releases the GIL so the process's gRPC
thread stays responsive while the simulated CPU is busy.

Latency-sensitive tasks are user-space workloads: their periods and busy phases are
given directly in wall time (they are what the user configures, like cyclictest's
interval), and reports show every figure both in wall time and in kernel time.

Cost figures are order-of-magnitude kernel costs, not measurements of one machine:
- buddy_page_us 0.1: moving one page between a pcp list and the buddy free lists
  under zone->lock (free_pcppages_bulk / rmqueue_bulk run at roughly 50-150 ns/page).
- zone_lock_us 0.5: taking zone->lock and the call's fixed overhead.
- workqueue_dispatch_us 8: what one queued work item costs its CPU besides its
  own work: the IPI, waking the kworker, switching to it and back (on a NOHZ_FULL
  CPU also leaving and re-entering user mode and restarting the tick).
- irq_us 4: one simulated device interrupt on a housekeeping CPU.
At scale 250 a pcp of 300 pages drains in 30 us kernel = 7.5 ms wall, well above
the ~0.3 ms p99 timer noise floor.
"""

import time
from dataclasses import dataclass

TIME_SCALE = 250.0


def lease_clock() -> float:
    """Seconds on the clock every membership lease is measured on: CLOCK_BOOTTIME, which, unlike
    CLOCK_MONOTONIC, keeps counting while the machine (or its VM) is suspended. A node resumed
    after a suspension must find its lease expired, since the coordinator went on counting; on
    the monotonic clock it would believe its lease and use pages already taken back. Where the
    platform has no CLOCK_BOOTTIME (it is Linux's), time.monotonic is the best there is.
    Only leases use it: the modeled costs, metrics and the chaos history stay on
    time.monotonic, which every process on a host shares."""
    return time.clock_gettime(_LEASE_CLOCK_ID) if _LEASE_CLOCK_ID is not None else time.monotonic()


_LEASE_CLOCK_ID = getattr(time, "CLOCK_BOOTTIME", None)


@dataclass(frozen=True)
class CostModel:
    time_scale: float = TIME_SCALE
    buddy_page_us: float = 0.1
    zone_lock_us: float = 0.5
    workqueue_dispatch_us: float = 8.0
    irq_us: float = 4.0

    def wall(self, kernel_us: float) -> float:
        """Wall-clock seconds that `kernel_us` of kernel time lasts."""
        return kernel_us * 1e-6 * self.time_scale

    def kernel_us(self, wall_s: float) -> float:
        """Kernel microseconds that `wall_s` of wall time stands for."""
        return wall_s / self.time_scale * 1e6

    def zone_hold(self, pages: int) -> float:
        """Wall seconds zone->lock is held to move `pages` pages (blocks) through the buddy."""
        return self.wall(self.zone_lock_us + self.buddy_page_us * pages)
