"""Kernel profiles (node.mm.profile): each one's locking differences, pinned on the pure model."""

import threading

import pytest

from node.cpu import wall_pcp_lock
from node.mm import pcp as pcpmod
from node.mm import profile as profiles
from node.mm.constants import MIGRATE_MOVABLE, MIGRATE_UNMOVABLE
from node.mm.lock import spin_lock, spin_locked, spin_unlock
from node.mm.zone import Zone


def setup(name, n=8):
    """A zone, a pcp, the profile's entry points and n order-0 pages held by the CPU."""
    zone = Zone(0, 1 << 16, 4, lock=threading.Lock())
    pcp = pcpmod.PerCpuPages(1, high=518, batch=63, lock=wall_pcp_lock())  # some tests run a second thread
    ops = profiles.pcp_ops(profiles.get(name))
    held = [zone.rmqueue_buddy(0, MIGRATE_MOVABLE) for _ in range(n)]
    return zone, pcp, ops, [(pfn, 0, MIGRATE_MOVABLE) for pfn in held]


def test_each_profile_names_its_semantics():
    """5.19 is the local_lock design drained by workqueue, which no other CPU can lock; 6.1 and 6.2 take
    a spinlock remotely; only 6.2 leaves IRQs on and trylocks in the batched free."""
    p519, p61, p62 = (profiles.get(n) for n in ("5.19", "6.1", "6.2"))
    assert (p519.strategy, p519.pcp_lock, p519.remote_drain) == ("workqueue", "local_lock", False)
    assert (p61.strategy, p61.pcp_lock, p61.remote_drain, p61.irqs_off, p61.free_list_trylock) == (
        "remote",
        "spinlock",
        True,
        True,
        False,
    )
    assert (p62.strategy, p62.pcp_lock, p62.remote_drain, p62.irqs_off, p62.free_list_trylock) == (
        "remote",
        "spinlock",
        True,
        False,
        True,
    )
    with pytest.raises(ValueError, match=r"unknown kernel profile '6\.3'"):
        profiles.get("6.3")


@pytest.mark.parametrize("name", ["5.19", "6.1"])
def test_batched_free_spins_while_a_remote_drain_holds_the_lock(name):
    """Under 6.1 (and 5.19, whose local_lock the batched free also takes unconditionally)
    free_unref_page_list waits for a drainer holding the pcp lock, then puts every page on the pcp:
    no trylock failure, no buddy fallback."""
    zone, pcp, ops, pages = setup(name)
    spin_lock(pcp.lock)  # the remote drainer
    done = threading.Event()
    t = threading.Thread(target=lambda: (ops.free_unref_page_list(zone, pcp, pages), done.set()))
    t.start()
    t.join(0.2)
    assert t.is_alive() and not done.is_set() and pcp.count == 0  # spinning on the held lock
    spin_unlock(pcp.lock)
    t.join(5)
    assert done.is_set() and pcp.count == len(pages)
    assert (pcp.stats.trylock_fail_free, pcp.stats.buddy_fallback_free) == (0, 0)


def test_batched_free_falls_back_to_the_buddy_under_6_2():
    """Under 6.2 free_unref_page_list trylocks: with a drainer holding the lock it returns at once, every
    page back in the buddy (zone free pages up by all of them), each page's own trylock failing and
    sending it there; with the lock free the pages go on the pcp."""
    zone, pcp, ops, pages = setup("6.2")
    free0 = zone.free_pages
    with spin_locked(pcp.lock):
        ops.free_unref_page_list(zone, pcp, pages)
        assert pcp.count == 0 and zone.free_pages == free0 + len(pages)
    assert (pcp.stats.trylock_fail_free, pcp.stats.buddy_fallback_free) == (len(pages), len(pages))
    zone2, pcp2, ops2, pages2 = setup("6.2", n=40)
    ops2.free_unref_page_list(zone2, pcp2, pages2)  # crosses a SWAP_CLUSTER_MAX relock
    assert pcp2.count == 40 and pcp2.stats.trylock_fail_free == 0


@pytest.mark.parametrize("name,runs_at_once,fallbacks", [("6.1", False, 0), ("5.19", False, 0), ("6.2", True, 1)])
def test_irq_allocation_on_a_cpu_holding_its_own_pcp_lock(name, runs_at_once, fallbacks):
    """An IRQ raised while its CPU is inside its own pcp section: with IRQs off (5.19, 6.1) it waits for
    the unlock and then allocates from the pcp; with IRQs on (6.2) it runs at once, finds the lock taken
    and falls back to the buddy."""
    zone, pcp, _, _ = setup(name)
    irq = profiles.LocalIrq(profiles.get(name), pcp)
    got, ran_in_section = [], []

    def handler():
        ran_in_section.append(irq.in_section)
        got.append(pcpmod.rmqueue(zone, pcp, 0, MIGRATE_UNMOVABLE))

    irq.pcp_section(lambda: irq.raise_irq(handler))
    assert ran_in_section == [runs_at_once] and got[0] is not None
    assert pcp.stats.buddy_fallback_alloc == fallbacks
    assert pcp.stats.trylock_fail_alloc == fallbacks


def test_a_cluster_is_offered_only_the_profiles_its_nodes_run_as_themselves():
    """The bug-replay variants (uniprocessor, batched free) run in `pcpsim replay` only: a
    multi-CPU cluster labelled uniprocessor, or a batched-free run that frees in one call, would
    report figures under a name they do not belong to."""
    from coordinator.tools.cli.parser import build_parser
    from coordinator.tools.compare_plan import CompareConfig

    assert set(profiles.LIVE) == {
        *("5.19", "6.1", "6.2", "6.6", "6.12", "6.12-count-race", "6.19", "6.1.y", "6.6.y", "6.12.y")
    }
    with pytest.raises(ValueError, match="bug-replay variant"):
        CompareConfig(kernel="6.2-up")
    for argv in (["compare", "--kernel", "6.2-up"], ["cluster", "up", "--kernel", "6.2-batched-free"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(argv)


def test_the_lts_profiles_are_their_base_releases_with_the_stable_backports():
    """6.1.y: the trylock paths of 6.2 (574907741599, backported at 6.1.57), yangge's THP lists (6.1.97),
    the count-locked chunked drain and the free_factor cap (6.1.104). 6.6.y: the last three on 6.6
    (6.6.37, 6.6.45). docs/kernel-facts.md section 19."""
    backports = {"drain": "count-locked", "thp_lists": (0, 1, 0), "free_factor_capped": True}
    assert profiles.get("6.1.y") == profiles.replace(profiles.get("6.2"), name="6.1.y", **backports)
    assert profiles.get("6.6.y") == profiles.replace(profiles.get("6.6"), name="6.6.y", **backports)
    # 6.12.67: Hahn's decay_pcp_high batching only (his free path batching was no stable dependency).
    assert profiles.get("6.12.y") == profiles.replace(profiles.get("6.12"), name="6.12.y", decay_pcp_high_batched=True)
    assert not any(profiles.get(k).free_factor_capped for k in ("6.1", "6.2", "6.6", "6.12", "6.19"))


@pytest.mark.parametrize(
    ("capped", "freed"),
    [
        (False, [63, 126, 252, 504, 1008, 2016, 4032, 8064, 9937, 9937]),
        (True, [63, 126, 252, 504, 1008, 2016, 2016, 2016, 2016, 2016]),
    ],
)
def test_the_stable_backport_stops_free_factor_at_pcp_batch_scale_max(capped, freed):
    """nr_pcp_free with free_factor (v6.1 to v6.6): each flush without an allocation between doubles what
    the next frees, up to high - batch. The 6.1.104 / 6.6.45 tree raises free_factor only while it is
    below CONFIG_PCP_BATCH_SCALE_MAX (`pcp->free_factor < CONFIG_PCP_BATCH_SCALE_MAX`), so with a high
    of 10,000 a flush frees at most 63 << 5 = 2016 pages, where v6.1 goes on to 9,937."""
    pcp = pcpmod.PerCpuPages(0, high=10000, batch=63)
    pcp.free_factor_capped = capped
    assert [pcpmod.nr_pcp_free(pcp, 10000, 63, False) for _ in range(10)] == freed
    assert pcp.free_factor == (5 if capped else 8)


def test_a_6_1_y_node_runs_the_backports():
    import time

    from node.mm import pcp_high
    from node.runtime import NodeRuntime, TaskConfig
    from node.shared.timebase import CostModel

    zone = Zone(0, 262144, 4)
    rt = NodeRuntime(
        0, "housekeeping", 321, 63, zone, None, 1, CostModel(), TaskConfig.for_role("housekeeping"),
        time.monotonic, kernel="6.1.y", high_max=pcp_high.high_max(zone.managed_pages, 63, 4),
    )  # fmt: skip
    assert rt.pcp.free_factor_capped and len(rt.pcp.lists) == 14 and not rt.pcp.auto_high
