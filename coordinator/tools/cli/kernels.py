"""`kernels`: what each kernel profile (`--kernel`) models, read from the profile table the CPUs run
(node.mm.profile.PROFILES), so it cannot say other than the model does. The sources of each row are
cited in node/mm/profile.py and docs/kernel-facts.md."""

import json

from node.mm import profile as profiles
from node.mm.constants import nr_pcp_lists

# (column, its values' meaning), in the order printed.
COLUMNS = (
    ("strategy", "the drain strategy of that kernel (compare's and cluster up's default)"),
    ("pcp lock", "pcp->lock: a local_lock only its CPU takes, or a spinlock another CPU may take"),
    ("irqs", "IRQs while a CPU holds its own pcp lock"),
    (
        "list free",
        "the batched free: under the local lock, spinning on the lock, trylock page by page, or as free_unref_folios",
    ),
    ("drain_pages_zone", "one hold, chunks of batch << 5, or chunks with count read under the lock"),
    ("pcp->high", "fixed by the zone, or auto-tuned between high_min and high_max"),
    ("flush", "the free path's flush: one zone->lock hold, or pcp->batch chunks"),
    ("decay", "decay_pcp_high's free (auto-tuned kernels): one zone->lock hold, or pcp->batch chunks"),
    (
        "free_high",
        "when a run of high-order frees flushes them: by free_factor (to v6.6; capped at 5 in 6.1.104+ and "
        "6.6.45+), once free_count >= batch (v6.7), or >= batch + high_min / 2",
    ),
    ("lists", "pcp lists: 12 low-order ones and the THP-order ones (3, 1 or 2)"),
    ("buddy type", "the free list a freed page joins: the type it was freed with, or its pageblock's"),
    ("alloc fallback", "a pcp allocation that gets no page: fails (to v5.19), or takes it from the buddy (v6.0+)"),
    ("vmstat on isolated", "vmstat_update on isolated CPUs: queued, or skipped by vmstat_shepherd"),
)


def free_high(p: profiles.KernelProfile) -> str:
    """What starts a run of high-order frees flushing them: free_factor to v6.6 (capped in the LTS
    series), free_count from v6.7, against batch or, from v6.16, batch + high_min / 2."""
    if not p.pcp_high_auto:
        return "free_factor<=5" if p.free_factor_capped else "free_factor"
    return "batch+high_min/2" if p.free_high_half_high_min else "batch"


def row(name: str) -> dict[str, str | int]:
    p = profiles.get(name)
    if p.free_unref_folios:
        list_free = "free_unref_folios"
    elif p.pcp_lock == "local_lock":
        list_free = "local lock"
    else:
        list_free = "trylock" if p.free_list_trylock else "spin"
    return {
        "kernel": p.name,
        "strategy": p.strategy,
        "pcp lock": p.pcp_lock,
        "irqs": "off" if p.irqs_off else "on",
        "list free": list_free,
        "drain_pages_zone": p.drain,
        "pcp->high": "auto-tuned" if p.pcp_high_auto else "fixed",
        "flush": "batch chunks" if p.free_high_batched else "one hold",
        "decay": ("batch chunks" if p.decay_pcp_high_batched else "one hold") if p.pcp_high_auto else "-",
        "free_high": free_high(p),
        "lists": nr_pcp_lists(p.thp_lists),
        "buddy type": "freed with" if p.pcppage_migratetype_cached else "pageblock's",
        "alloc fallback": "buddy" if p.buddy_fallback else "none",
        "vmstat on isolated": "skipped" if p.vmstat_skips_isolated else "queued",
    }


def cmd_kernels(args) -> int:
    rows = [row(name) for name in profiles.LIVE]
    if args.json:
        print(json.dumps({"columns": dict(COLUMNS), "kernels": rows}, indent=2))
        return 0
    names = ["kernel", *(c for c, _ in COLUMNS)]
    widths = {n: max(len(n), *(len(str(r[n])) for r in rows)) for n in names}
    print("  ".join(f"{n:<{widths[n]}}" for n in names).rstrip())
    for r in rows:
        print("  ".join(f"{r[n]!s:<{widths[n]}}" for n in names).rstrip())
    print()
    for column, meaning in COLUMNS:
        print(f"{column}: {meaning}")
    print("Sources: node/mm/profile.py and docs/kernel-facts.md; bug-replay variants: pcpsim replay --help.")
    return 0
