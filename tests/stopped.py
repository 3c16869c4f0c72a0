"""What a chaos run's stopped node processes did while stopped (the evidence, in both engines' tests, that
a stop-node fault froze its process): nothing, as a SIGSTOPped process runs nothing."""


def stopped_spans(entries: list[dict]) -> dict[int, list[tuple[float, float]]]:
    """Each CPU's spans of history time during which some stop-node fault held its process stopped: from
    the start entry (written once SIGSTOP is sent) to when SIGCONT was sent (the wall nemesis's
    `stopped_until`, taken just before it: the heal entry itself comes after, when the node may have run
    already; a virtual heal entry is the instant itself)."""
    depth: dict[int, int] = {}
    since: dict[int, float] = {}
    spans: dict[int, list[tuple[float, float]]] = {}
    for e in entries:
        if e["type"] != "fault" or e["f"] != "stop-node" or "error" in e:
            continue
        cpu = e["cpu"]
        if e["phase"] == "start":
            depth[cpu] = depth.get(cpu, 0) + 1
            since.setdefault(cpu, e["t"])
        else:
            depth[cpu] -= 1
            if not depth[cpu]:
                spans.setdefault(cpu, []).append((since.pop(cpu), e.get("stopped_until", e["t"])))
    return spans


def written_while_stopped(entries: list[dict], events: list[dict], after_stop_s: float) -> list[dict]:
    """The lines a stopped CPU's own process wrote to its transfer log (those carry its incarnation; the
    coordinator's do not) at a time inside one of its stops, from `after_stop_s` after the stop began
    (the signal's delivery, and the history's rounding to the microsecond) to its end less 1 us."""
    spans = stopped_spans(entries)
    return [
        e
        for e in events
        if "inc" in e
        for a, b in spans.get(e.get("cpu", -1), ())
        if a + after_stop_s < e["t"] < b - 1e-6
    ]
