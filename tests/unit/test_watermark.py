"""Kernel sizing arithmetic (init_per_zone_wmark_min, __setup_per_zone_wmarks, zone_batchsize, zone_highsize)."""

from node.mm.watermark import (
    init_per_zone_wmark_min,
    pageset_batch,
    rounddown_pow_of_two,
    setup_per_zone_wmarks,
    zone_batchsize,
    zone_highsize,
)
from node.mm.zone import Zone


def test_16gib_zone_16_cpus_gives_batch_63_high_518():
    """16 GiB (4194304 pages): min_free_kbytes 16384 -> min 4096, step max(1024, 4194) -> low 8290, high 12484;
    batch min(4096, 256)/4 = 64 -> rounddown(96) - 1 = 63; high = 8290 // 16 = 518."""
    z = Zone(0, 4194304, 16)
    assert z.min_free_kbytes == 16384
    assert z.watermark == {"min": 4096, "low": 8290, "high": 12484}
    assert z.zone_batchsize() == 63
    assert z.zone_highsize(63, 16) == 518


def test_1gib_zone_4_cpus():
    """1 GiB (262144 pages): min_free_kbytes 4096 -> min 1024, step max(256, 262) = 262 -> low 1286, high 1548;
    batch is still 63 (capped by SZ_1M / PAGE_SIZE = 256); high = 1286 // 4 = 321 (above 4 * 63 = 252)."""
    z = Zone(0, 262144, 4)
    assert z.min_free_kbytes == 4096
    assert z.watermark == {"min": 1024, "low": 1286, "high": 1548}
    assert z.zone_batchsize() == 63
    assert z.zone_highsize(63, 4) == 321


def test_highsize_is_at_least_four_batches():
    """With many CPUs the low watermark share falls below 4 * batch, and 4 * batch wins."""
    assert zone_highsize(1286, 63, 64) == 252
    z = Zone(0, 262144, 4)
    assert z.zone_highsize(63, 64) == 252


def test_min_free_kbytes_is_clamped():
    """int_sqrt(16 * lowmem_kbytes) is clamped to [128, 262144]."""
    assert init_per_zone_wmark_min(16) == 128
    assert init_per_zone_wmark_min(1 << 40) == 262144
    assert init_per_zone_wmark_min(1048576) == 4096


def test_scale_factor_step_wins_on_large_zones():
    """The watermark step is max(min/4, managed * 10 / 10000)."""
    assert setup_per_zone_wmarks(4194304, 16384) == {"min": 4096, "low": 8290, "high": 12484}
    # Small zone: the min/4 term wins. 8192 pages -> kbytes 32768 -> sqrt(524288) = 724 -> min 181, step 45.
    assert init_per_zone_wmark_min(32768) == 724
    assert setup_per_zone_wmarks(8192, 724) == {"min": 181, "low": 226, "high": 271}


def test_batchsize_small_zones():
    """v6.1 zone_batchsize returns 0 below 4096 pages (rounddown_pow_of_two(1) - 1); the installed batch is >= 1."""
    assert zone_batchsize(1024) == 0
    assert pageset_batch(1024) == 1
    assert zone_batchsize(8192) == 1  # 8 / 4 = 2 -> rounddown(3) - 1
    assert zone_batchsize(65536) == 15  # 64 / 4 = 16 -> rounddown(24) - 1
    assert zone_batchsize(131072) == 31  # 128 / 4 = 32 -> rounddown(48) - 1
    assert zone_batchsize(1 << 30) == 63  # capped at 256 / 4
    assert rounddown_pow_of_two(96) == 64
