"""Zone watermarks and pcp sizing arithmetic, as in mm/page_alloc.c (v6.1).

Models:
- ``init_per_zone_wmark_min``: min_free_kbytes = int_sqrt(lowmem_kbytes * 16), clamped to [128, 262144].
- ``__setup_per_zone_wmarks`` with watermark_scale_factor = 10 (the default) and no watermark boost.
- ``zone_batchsize`` (CONFIG_MMU case) and ``zone_highsize`` with percpu_pagelist_high_fraction = 0.

Deviations:
- One zone per node, so the kernel's share of min (pages_min * managed / lowmem_pages) is pages_min itself,
  and lowmem_kbytes is the zone's managed memory (the kernel uses nr_free_buffer_pages(), which equals
  the managed pages of a single lowmem zone at boot, before any watermark is set).
- ``zone_highsize`` takes the CPU count as an argument instead of reading cpumask_of_node(); the kernel
  divides by the node's CPUs (plus cpu_online during hotplug), which is what the caller passes.
- ``zone_batchsize`` returns the raw v6.1 result, which is 0 for zones under 4096 pages; the kernel's caller
  (zone_set_pageset_high_and_batch) applies max(1, batch), and so must ours (``pageset_batch``).
"""

from math import isqrt

from .constants import PAGE_SHIFT, PAGE_SIZE

SZ_1M = 1 << 20
MIN_FREE_KBYTES_MIN = 128
MIN_FREE_KBYTES_MAX = 262144
WATERMARK_SCALE_FACTOR = 10  # vm.watermark_scale_factor default: 0.1% of managed memory


def init_per_zone_wmark_min(lowmem_kbytes: int) -> int:
    """min_free_kbytes for a system with ``lowmem_kbytes`` of lowmem (int_sqrt(lowmem_kbytes * 16), clamped)."""
    new_min = isqrt(lowmem_kbytes * 16)
    return max(MIN_FREE_KBYTES_MIN, min(new_min, MIN_FREE_KBYTES_MAX))


def mult_frac(x: int, numer: int, denom: int) -> int:
    # The kernel's overflow-safe x * numer / denom; for non-negative ints it equals plain floor division.
    q, r = divmod(x, denom)
    return q * numer + (r * numer) // denom


def setup_per_zone_wmarks(
    managed_pages: int, min_free_kbytes: int, watermark_scale_factor: int = WATERMARK_SCALE_FACTOR
) -> dict[str, int]:
    """{"min", "low", "high"} in pages for the only zone of the node (``__setup_per_zone_wmarks``)."""
    pages_min = min_free_kbytes >> (PAGE_SHIFT - 10)
    wmin = pages_min  # single zone: managed_pages / lowmem_pages == 1
    # The gap between watermarks is the larger of 25% of min and scale_factor/10000 of memory.
    tmp = max(wmin >> 2, mult_frac(managed_pages, watermark_scale_factor, 10000))
    return {"min": wmin, "low": wmin + tmp, "high": wmin + 2 * tmp}


def rounddown_pow_of_two(n: int) -> int:
    if n < 1:
        raise ValueError(f"rounddown_pow_of_two({n}) is undefined")
    return 1 << (n.bit_length() - 1)


def zone_batchsize(managed_pages: int) -> int:
    """v6.1 zone_batchsize (docs/kernel-facts.md §15): about 1/4 MiB of pages at most, minus one to avoid
    power-of-two aliasing."""
    batch = min(managed_pages >> 10, SZ_1M // PAGE_SIZE)
    batch //= 4  # the kernel "effectively *= 4 below" (high = 4 * batch historically)
    if batch < 1:
        batch = 1
    # batch + batch/2 then round down: 2^n - 1 values avoid cache-colour aliasing (kernel comment).
    return rounddown_pow_of_two(batch + batch // 2) - 1


def pageset_batch(managed_pages: int) -> int:
    """The batch the kernel actually installs: zone_set_pageset_high_and_batch uses max(1, zone_batchsize)."""
    return max(1, zone_batchsize(managed_pages))


def zone_highsize(low_wmark: int, batch: int, nr_cpus: int) -> int:
    """v6.1 zone_highsize (percpu_pagelist_high_fraction = 0): the low watermark split across the CPUs,
    so full pcp lists do not wake kswapd prematurely; at least 4 * batch."""
    if nr_cpus < 1:
        raise ValueError(f"zone_highsize needs at least one CPU, got nr_cpus={nr_cpus}")
    high = low_wmark // nr_cpus
    return max(high, batch << 2)
