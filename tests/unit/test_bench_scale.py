"""The scale figure's pure parts: the CPU layout and the /proc readings it reports (no timing asserted)."""

import os
import time

import pytest

from coordinator.tools.bench.scale import cpu_seconds, scale_roles, vm_rss_bytes


@pytest.mark.parametrize("n,hk,iso", [(64, 4, 8), (16, 1, 2), (2, 1, 1), (9, 1, 1)])
def test_layout_is_a_nohz_full_machine(n, hk, iso):
    roles = scale_roles(n)
    assert len(roles) == n
    assert roles.count("housekeeping") == hk
    assert roles.count("isolated-preemptible") == iso
    assert roles.count("idle") == n - hk - iso


def test_a_scale_run_needs_two_cpus():
    with pytest.raises(ValueError):
        scale_roles(1)


def test_proc_readings_of_this_process():
    assert 1 << 20 < vm_rss_bytes(os.getpid()) < 1 << 40
    tick = 1 / os.sysconf("SC_CLK_TCK")

    def times() -> float:  # the kernel's own account of this process, read another way
        t = os.times()
        return t.user + t.system

    before = cpu_seconds(os.getpid())
    assert abs(before - times()) <= 2 * tick
    start = time.process_time()
    while time.process_time() - start < 20 * tick:  # CPU time, so the counter moves by ~20 ticks
        sum(i * i for i in range(10_000))
    after = cpu_seconds(os.getpid())
    assert abs(after - times()) <= 2 * tick
    assert after - before >= 15 * tick
    with pytest.raises(OSError):
        vm_rss_bytes(2**22 + 7)  # above pid_max's default ceiling: no such process
