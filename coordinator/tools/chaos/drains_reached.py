"""The checker's `drains reached every CPU` (coordinator.tools.chaos.checker): see `check`."""

# A history's times are rounded to the microsecond (coordinator.tools.chaos.history), a transfer log's not.
ROUNDING_S = 1e-6


def check(history, events: list[dict] | None, out: list, stats: dict) -> None:
    """Every CPU a drain the workload saw end (ok or fail) marked has a part in its reply, and every part
    it reports drained ran on that CPU between the call's invoke and its end: the node's `drain` lines
    (node.shared.transfer_log: a lock_drain chunk, an rcu-swap or a drain_local_pages work item, each
    written before the drainer hears of it) in that span take at least the pages reported. A drainer
    that skips a CPU and reports it drained moves no page, so conservation alone cannot see it. The
    drains are the workload's DrainAllPages calls and those its AllocContigRange reports (alloc_contig_range
    drains the zone after isolating the range, once per attempt).

    Another drain in the span (a reclaim drain, a second coordinator's, the same range's earlier attempt)
    may have reached the CPU instead: that can hide a skip, never report one falsely. A history written
    before `cpus_marked` was recorded is not looked at: its nodes logged no `drain` lines.

    Only the lines of the run's strategy count (`_strategy_ran`): a remote or rcu-swap drainer that queued
    a work item on a CPU instead interrupted it, the very cost those strategies exist to avoid, and a
    work item the CPU ran does not show that the drainer reached it."""
    ran: dict[int, list[tuple[float, int, str]]] | None = None  # cpu -> (t, pages, how) of each part run there
    if events is not None:  # None: the run kept no transfer logs
        ran = {}
        for e in events:
            if e["ev"] == "drain" and "inc" in e:
                ran.setdefault(e["cpu"], []).append((e["t"], e.get("pages", 0), e.get("how", "")))
    meta: dict = next((e for e in history if e["type"] == "meta" and e["f"] == "scenario"), {})
    way = _strategy_ran(meta)
    invoked: dict[int, float] = {}
    contig_since: float | None = None
    reported = 0
    for e in history:
        if e["process"] != "workload" or e["type"] == "info":
            continue
        if e["f"] == "drain":
            if e["type"] == "invoke":
                invoked[e["index"]] = e["t"]
                continue
            start = invoked.pop(e["index"], None)
            drains = [(f"drain {e['index']}", e)]
        elif e["f"] == "alloc-contig":
            if e["type"] == "invoke":
                contig_since = e["t"]
                continue
            start, contig_since = contig_since, None
            drains = [(f"alloc-contig's drain {i}", d) for i, d in enumerate(e.get("drains", []))]
        else:
            continue
        for name, drain in drains:
            if start is not None and "cpus_marked" in drain:
                reported += _parts_ran(name, drain, start, e["t"], ran, way, out)
    if ran is not None:
        stats["drain_parts"] = {"reported": reported}


# A `drain` line's how (node.shared.transfer_log): what such drains are, and how a strategy drains by them.
DRAIN_HOW = {
    "lock": ("remote pcp lock drains", "the remote pcp lock"),
    "swap": ("rcu-swaps", "an rcu-swap"),
    "work": ("work items", "a work item"),
}


def _strategy_ran(meta: dict) -> tuple[str, set[str]] | None:
    """How the run's strategy drains a CPU, as its nodes' `drain` lines name it: (the strategy, the lines'
    `how`s), or None when the history does not say (any line then counts). qpw drains by the remote lock
    when some CPU is isolated (coordinator.drain.qpw: pw_queue_on's key, on when a CPU is NOHZ_FULL)."""
    strategy = meta.get("strategy")
    if strategy == "qpw":
        isolated = meta.get("scenario", {}).get("cluster", {}).get("isolated")
        return None if isolated is None else (strategy, {"lock"} if isolated else {"work"})
    hows = {"workqueue": {"work"}, "remote": {"lock"}, "rcu-swap": {"swap"}}.get(strategy or "")
    return None if hows is None else (strategy or "", hows)


def _parts_ran(
    name: str,
    drain: dict,
    start: float,
    end: float,
    ran: dict | None,
    way: tuple[str, set[str]] | None,
    out: list,
) -> int:
    """One drain's parts (see _drains_reached) against what ran on each CPU (None: not known, only the
    marked CPUs' parts are looked for) the strategy's way (`way`, see _strategy_ran); returns how many
    parts reported drained it looked at."""
    parts = {c["cpu"]: c for c in drain.get("cpus", [])}
    for cpu in drain["cpus_marked"]:
        if cpu not in parts:
            out.append(f"{name}: cpu{cpu} was marked, and its reply has no part for cpu{cpu}")
    if ran is None:
        return 0
    reported = 0
    for cpu, part in sorted(parts.items()):
        if not part.get("ok", True):
            continue
        reported += 1
        span = [(n, how) for t, n, how in ran.get(cpu, ()) if start - ROUNDING_S <= t <= end + ROUNDING_S]
        took = [n for n, how in span if way is None or how in way[1]]
        pages = part.get("pages", 0)
        between = f"between {start:.3f}s and {end:.3f}s"
        if not took and span:
            assert way is not None
            others = " and ".join(sorted({DRAIN_HOW[how][0] for _, how in span}))
            out.append(
                f"{name}: cpu{cpu} reported drained ({pages} pages), but the drains that ran on cpu{cpu} "
                f"{between} were {others}; {way[0]} drains by {' or '.join(DRAIN_HOW[h][1] for h in sorted(way[1]))}"
            )
        elif not took:
            out.append(f"{name}: cpu{cpu} reported drained ({pages} pages), but no drain ran on cpu{cpu} {between}")
        elif sum(took) < pages:
            out.append(
                f"{name}: cpu{cpu} reported {pages} pages drained, but the drains that ran on cpu{cpu} "
                f"{between} took {sum(took)}"
            )
    return reported
