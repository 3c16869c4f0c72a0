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

The default costs are published measurements where one exists (node/costs/sapphire-rapids.toml
holds the same figures, with their sources, as a file to copy for another machine):
- buddy_page_us 0.0295 and zone_lock_us 0.51: the zone->lock section of free_pcppages_bulk,
  per page and per call. Huang Ying measured it with ftrace function_graph on a Sapphire Rapids
  server (will-it-scale/page_fault1, pcp high = 2 * batch, free batch scaling off): 2.33 us
  for 63 pages, 4.35/127, 8.29/255, 15.79/511, 30.25/1023, 59.39/2047 (average per call).
  Source: commit 52166607ecc9 "mm: restrict the pcp batch scale factor to avoid too long
  latency" (v6.7, CONFIG_PCP_BATCH_SCALE_MAX), posted as
  <20231016053002.756205-5-ying.huang@intel.com>. The line is the least-squares fit of the
  six averages by relative error: it gives 2.37 / 30.69 / 60.90 us for 63 / 1,023 / 2,047
  pages, +1.7 / +1.4 / +2.5 % of the published figures (tests/unit/test_cost_model.py).
  The averages include function_graph's own overhead. zone_hold charges every zone
  operation but a refill by this line: a free of `pages` blocks, a range taken or released.
- rmqueue_page_us 0.0233 and rmqueue_lock_us 1.27: the zone->lock section of rmqueue_bulk
  (a pcp refill), from the alloc columns of the same measurement: 2.67 us for 63 pages,
  4.22/127, 7.52/255, 14.02/511, 25.36/1023, 45.22/2047; the same fit gives 2.74 / 25.11 /
  48.97 us for 63 / 1,023 / 2,047 pages (+2.5 / -1.0 / +8.3 %).
- workqueue_dispatch_us 7: what one queued work item costs its CPU besides its own work.
  Marcelo Tosatti traced it with oslat on an isolated CPU: "The example above shows an
  additional 7us for the oslat -> kworker -> oslat switches" (vmstat_update queued at
  1094.456971, back to oslat at .456978), <ZIDoV/zxFKVmQl7W@tpad>, commit be5e015d107d
  "vmstat: skip periodic vmstat update for isolated CPUs" (v6.5). Those 7 us include
  vmstat_update's own (small) work and no IPI (the work was queued by the CPU itself, in
  mlock); a drain queued from another CPU adds the IPI and, on a NOHZ_FULL CPU, leaving
  user mode and restarting the tick. The same commit says the penalty seen inside a
  guest, whose host runs the work item, is over 50 us: a cost model file for a VM sets that.
- data_slice_kib 960: not a cost but the machine's, the share of the last-level cache one CPU gets
  (cacheinfo's per_cpu_data_slice_size: the LLC's size over the CPUs sharing it, drivers/base/
  cacheinfo.c update_per_cpu_data_slice_size_cpu), which decides PCPF_FREE_HIGH_BATCH on v6.7+
  (node.mm.pcp_high.zone_pcp_update_cacheinfo). Sapphire Rapids has 1.875 MB of L3 a core, shared
  by the socket's threads, two a core: 105 MB on the 56-core parts (112 threads; listings of the
  engineering samples, e.g. techlife.app, "56 core 112 threads, 105.0mb L3 cache"), up to 112.5 MB
  on the 60-core one (TechInsights, "Sapphire Rapids Scales to 60 CPUs, 8 Sockets"): 960 KiB a
  thread either way, 240 pages, over the 3 * 63 = 189 of a 1 GiB zone's batch, so the flag is set, as
  the commit's changelog expects of "recent x86_64 server CPUs". Which part Huang Ying's server had
  is not said in what was read. A file for a machine without the flag sets a smaller slice.
- irq_us 4: one simulated device interrupt on a housekeeping CPU. Not measured: an order of
  magnitude, because no published figure measures a whole device interrupt (entry, handler,
  exit) on the machine the other figures come from; it only occupies housekeeping CPUs,
  which run no latency task.

TIME_SCALE stays 250 with these costs: an isolated CPU's pcp in `pcpsim compare` holds one
batch (63 pages), whose free holds zone->lock 2.37 us kernel = 0.59 ms wall, about twice the
~0.3 ms p99 timer lateness above; with the 7 us switch, a workqueue drain costs that CPU
9.4 us = 2.3 ms wall. Under the remote strategy no modeled cost reaches the isolated CPU: its
pcp lock is held for a control-stream round trip (docs/design.md, "Time base and cost model").

A cost model file (`--cost-model FILE` on the node and the coordinator, and on `pcpsim cluster
up` and `pcpsim compare`, which pass it to every process they start) is TOML whose keys are
CostModel fields, each a finite number >= 0 (time_scale > 0): load_cost_model. The cluster's
time base is the coordinator's: a node takes time_scale from its registration answer,
whatever its own file says.
"""

import argparse
import dataclasses
import math
import time
import tomllib
from dataclasses import dataclass

from node.mm.constants import PAGE_SHIFT

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
    """Kernel-time costs in microseconds (sources in the module's docstring), the time scale, and one
    figure of the machine's that a kernel decision reads (data_slice_kib)."""

    time_scale: float = TIME_SCALE
    buddy_page_us: float = 0.0295
    zone_lock_us: float = 0.51
    rmqueue_page_us: float = 0.0233
    rmqueue_lock_us: float = 1.27
    workqueue_dispatch_us: float = 7.0
    irq_us: float = 4.0
    data_slice_kib: float = 960.0  # not a cost: the machine's LLC share of one CPU (see the docstring)

    def data_slice_pages(self) -> int:
        """per_cpu_data_slice_size >> PAGE_SHIFT (node.mm.pcp_high.zone_pcp_update_cacheinfo)."""
        return int(self.data_slice_kib * 1024) >> PAGE_SHIFT

    def wall(self, kernel_us: float) -> float:
        """Wall-clock seconds that `kernel_us` of kernel time lasts."""
        return kernel_us * 1e-6 * self.time_scale

    def kernel_us(self, wall_s: float) -> float:
        """Kernel microseconds that `wall_s` of wall time stands for."""
        return wall_s / self.time_scale * 1e6

    def zone_hold_us(self, pages: int) -> float:
        """Kernel microseconds zone->lock is held to free `pages` pages (blocks) to the buddy
        (free_pcppages_bulk), or to take or release a range of that many blocks."""
        return self.zone_lock_us + self.buddy_page_us * pages

    def rmqueue_hold_us(self, pages: int) -> float:
        """Kernel microseconds zone->lock is held to take `pages` pages (blocks) off the buddy (rmqueue_bulk)."""
        return self.rmqueue_lock_us + self.rmqueue_page_us * pages

    def zone_hold(self, pages: int) -> float:
        """zone_hold_us in wall seconds."""
        return self.wall(self.zone_hold_us(pages))


# Upper bounds, so a finite but absurd value (1e308) is refused with the file, not met later as an
# overflow in a process already started: no modelled kernel step takes a second (1e6 us), no run is
# slowed a million times, and no CPU's share of a cache is a TiB (2**30 KiB).
MAX_COST_US = 1e6
_BOUNDS = {"time_scale": 1e6, "data_slice_kib": float(2**30)}


class CostModelError(ValueError):
    """A cost model file that cannot be used; the message names the file and the key."""


def load_cost_model(path: str) -> CostModel:
    """The CostModel a TOML file describes: its keys replace the defaults. Every key is checked
    before any is used, so a bad file changes nothing: an unknown key, a value that is not a
    number, or one that is negative or not finite (time_scale also not 0) is a CostModelError
    naming the key."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as err:
        raise CostModelError(f"cost model {path}: {err.strerror or err}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise CostModelError(f"cost model {path}: not TOML: {err}") from None
    known = [f.name for f in dataclasses.fields(CostModel)]
    values = {}
    for key, value in doc.items():
        where = f"cost model {path}: {key}"
        if key not in known:
            raise CostModelError(f"cost model {path}: unknown key {key!r} (known: {', '.join(known)})")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CostModelError(f"{where} must be a number, got {type(value).__name__} {value!r}")
        if key == "time_scale" and not (math.isfinite(value) and value > 0):
            raise CostModelError(f"{where} must be a finite number > 0, got {value}")
        if not (math.isfinite(value) and value >= 0):
            raise CostModelError(f"{where} must be a finite number >= 0, got {value}")
        if value > (bound := _BOUNDS.get(key, MAX_COST_US)):
            raise CostModelError(f"{where} must be at most {bound:g}, got {value:g}")
        values[key] = float(value)
    return CostModel(**values)


def cost_model_arg(text: str) -> CostModel:
    """argparse type of --cost-model FILE: the file's CostModel, or argparse's error."""
    try:
        return load_cost_model(text)
    except CostModelError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
