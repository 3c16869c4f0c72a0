"""Pure, synchronous model of the Linux v6.1 page allocator's pcp lists and buddy zone.

Layout (core first; nothing here does I/O, asyncio, gRPC or metrics):
- constants.py  enum migratetype, orders, pcp list indexing (include/linux/mmzone.h)
- watermark.py  min_free_kbytes, zone watermarks, zone_batchsize, zone_highsize
- lock.py       the lock Protocols the model takes (zone->lock: Lock; pcp->lock: PcpLock, in SimpleQueue's names,
                and the kernel-named spin_lock helpers), and their unshared kinds for one thread of control
- buddy.py      free areas, split (expand) and merge (__free_one_page), PageStateError
- zone.py       Zone: pageblock types, fallback/stealing, the ZoneOps methods the pcp code calls
- isolation.py  page isolation and taking a PFN range out of the buddy (alloc_contig_range, offline)
- zone_rules.py the zone service's rules: ownership, idempotency, min-watermark refusal, the hold each costs
- pcp.py        PerCpuPages, the allocation fast path, free_pcppages_bulk, drain_pages_zone, decay
- pcp_free.py   the free side: free_unref_page, its commit and flush above high, free_unref_page_list
- pcp_high.py   v6.7+ pcp->high auto-tuning (high_min/high_max, alloc_factor, free_count, decay)
- drain_chunked.py  v6.10/v6.11 drain_pages_zone in chunks (count read once, or under the lock)
- pcp_rcu.py    list sets behind an RCU pointer (Saenz Julienne's unmerged design)
- profile.py    what each kernel from 5.19 to 6.19 does differently around the pcp lists
- bugs.py       replays of the pcp bugs found after the v6.0 merge (pcpsim replay)
- audit.py      conservation, buddy and pcp invariant checkers
Standard library only; locks and the zone operations are passed in by the caller
(tests/unit/test_layering.py).
"""
