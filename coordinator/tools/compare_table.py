"""The table `pcpsim compare` prints: one column per strategy, every time in wall and kernel time (under
virtual time, whose results' time_scale is 1, kernel time only)."""

from node.mm import profile as profiles


def _ms(s: float, scale: float) -> str:
    """A time of the results' clock (`scale` of its seconds per kernel second)."""
    if scale == 1.0:
        return f"{s * 1e6:8.1f} us"
    return f"{s * 1e3:8.2f} ms ({s / scale * 1e6:6.1f} us)"


def _floor(s: float | None, scale: float) -> str:
    return "-" if s is None else _ms(s, scale)  # None: the task set has no preemptible task


ROWS = [
    ("drain_all_pages count", "drain_all.count", "n"),
    ("drain_all_pages p50", "drain_all.p50_s", "t"),
    ("drain_all_pages p99", "drain_all.p99_s", "t"),
    ("drain_all_pages max", "drain_all.max_s", "t"),
    ("drain p99/p50", None, "ratio"),
    ("drain_all_pages failed", "drain_all_failed", "n"),
    ("cma/offline ops ok p50", "contig.p50_s", "t"),
    ("cma/offline ops ok p99", "contig.p99_s", "t"),
    ("cma/offline ops ok max", "contig.max_s", "t"),
    ("cma/offline ops failed", "contig.failed", "n"),
    ("rcu grace period p50", "grace_period.p50_s", "gp"),
    ("rcu grace period p99", "grace_period.p99_s", "gp"),
    ("rcu grace period max", "grace_period.max_s", "gp"),
    ("preemptible wake p50", "isolated_preemptible.wake_latency_p50_s", "t"),
    ("preemptible wake p99", "isolated_preemptible.wake_latency_p99_s", "t"),
    ("preemptible wake max", "isolated_preemptible.wake_latency_max_s", "t"),
    ("preemptible deadline misses", "isolated_preemptible.deadline_misses", "n"),
    ("  by what stole the most", "isolated_preemptible.misses_by_cause", "causes"),
    ("preemptible drain work items", "isolated_preemptible.drain_work_items", "n"),
    ("preemptible stolen", "isolated_preemptible.stolen_s", "t"),
    ("  of it zone->lock waits", "isolated_preemptible.stolen_by_cause_s.zone_lock", "t"),
    ("rt wake p99", "isolated_rt.wake_latency_p99_s", "t"),
    ("rt deadline misses", "isolated_rt.deadline_misses", "n"),
    ("  by what stole the most", "isolated_rt.misses_by_cause", "causes"),
    ("rt stolen", "isolated_rt.stolen_s", "t"),
    ("  of it zone->lock waits", "isolated_rt.stolen_by_cause_s.zone_lock", "t"),
    ("rt drain work items", "isolated_rt.drain_work_items", "n"),
    ("rt drain wait max", "isolated_rt.drain_wait_max_s", "t"),
    ("pcp trylock failures", "pcp.trylock_failures", "n"),
    ("pcp buddy fallbacks", "pcp.buddy_fallbacks", "n"),
    ("audit ok", "audit.ok", "b"),
    ("audit lost / duplicated", None, "audit"),
]


CELL = 29  # a cell's text at most ("workqueue 95, zone_lock 36 +3"), right-aligned by format_table


def misses_cell(by_cause: dict) -> str:
    """Misses by cause, most first, as many as fit a cell, the rest summed: "zone_lock 112, none 2" or
    "workqueue 95, zone_lock 36 +4" (4 more misses under other causes). The results file's keys are
    sorted by name: the order is made here."""
    text, rest = "", sum(by_cause.values())
    for cause, n in sorted(by_cause.items(), key=lambda kv: (-kv[1], kv[0])):
        candidate = f"{text}, {cause} {n}" if text else f"{cause} {n}"
        if len(candidate) + (len(f" +{rest - n}") if rest > n else 0) > CELL:
            break
        text, rest = candidate, rest - n
    return f"{text} +{rest}".lstrip() if rest else text


def field(d: dict, path: str):
    """The value at a dotted path of a results dict, or None where it is absent or empty."""
    for key in path.split("."):
        d = d.get(key, {}) if isinstance(d, dict) else {}
    return d if d != {} else None


def table_rows(result: dict, kernel_us: bool = False) -> list[tuple[str, list[str]]]:
    """(label, one cell per strategy) for every row of the table, in result["strategies"] order; with
    `kernel_us`, each time as its kernel µs alone (coordinator.tools.compare_against)."""
    rows, scale = [], result["time_scale"]
    for label, path, kind in ROWS:
        cells = []
        for n in result["strategies"]:
            s = result["strategies"][n]
            if kind == "ratio":
                p50, p99 = field(s, "drain_all.p50_s"), field(s, "drain_all.p99_s")
                cells.append(f"{p99 / p50:.2f}" if p50 and p99 is not None else "-")
            elif kind == "gp" and n != "rcu-swap":
                cells.append("-")  # only rcu-swap waits for grace periods
            elif kind == "audit":
                cells.append(f"{field(s, 'audit.lost')} / {field(s, 'audit.duplicated')}")
            else:
                assert path is not None, "only the ratio and audit rows read no path"
                v = field(s, path)
                if v is None:
                    cells.append("-")
                elif kind == "causes":
                    cells.append(misses_cell(v))
                else:
                    if kind not in ("t", "gp"):
                        cells.append(str(v))
                    else:
                        cells.append(f"{v / scale * 1e6:.1f}" if kernel_us else _ms(v, scale))
        rows.append((label, cells))
    return rows


def floor_us(result: dict) -> str:
    """The noise floor's preemptible wake-up p99 in kernel µs, or "-" where the task set has no
    preemptible task."""
    p99 = result.get("noise_floor", {}).get("wake_latency_p99_s")
    return "-" if p99 is None else f"{p99 / result['time_scale'] * 1e6:.1f}"


def strategy_order(result: dict) -> list[str]:
    """The strategies in the order the run was asked for them (the file's keys are sorted by name)."""
    listed = result.get("config", {}).get("strategies")
    asked: list[str] = []
    for n in listed if isinstance(listed, list) else []:
        if isinstance(n, str) and n in result["strategies"] and n not in asked:
            asked.append(n)
    return asked + [n for n in result["strategies"] if n not in asked]


def only(result: dict, names: list[str]) -> dict:
    """`result` with just the strategies `names`, in that order (table_rows' columns)."""
    return {**result, "strategies": {n: result["strategies"][n] for n in names}}


def layout(rows: list[list[str]]) -> list[str]:
    """Rows of cells as lines: the first column left-aligned, the others right-aligned two spaces apart,
    each column as wide as its widest cell."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        (f"{row[0]:<{widths[0]}}" + "".join(f"  {c:>{w}}" for c, w in zip(row[1:], widths[1:], strict=True))).rstrip()
        for row in rows
    ]


def roles_text(roles: list[str]) -> str:
    """A layout by role, in first-seen order: "2 housekeeping, 1 isolated-preemptible, 1 isolated-rt"."""
    return ", ".join(f"{roles.count(role)} {role}" for role in dict.fromkeys(roles))


def clock_note(scale: float) -> str:
    """What the figures' clock is: virtual results' time scale is 1 (every time is kernel time), a wall
    run's the seconds of wall time per kernel second."""
    if scale == 1.0:
        return "virtual time: every time is kernel time"
    return f"wall time, kernel time in parentheses: 1 kernel us = {scale / 1e3:g} ms wall"


def clock_name(scale: float) -> str:
    """The figures' clock in one word: "kernel" under virtual time, else "wall"."""
    return "kernel" if scale == 1.0 else "wall"


def format_table(result: dict) -> str:
    names, scale = list(result["strategies"]), result["time_scale"]
    width = CELL + 2  # a cell and two spaces before it
    lines = [
        f"{'kernel ' + result.get('kernel', profiles.DEFAULT_KERNEL):30}" + "".join(f"{n:>{width}}" for n in names),
        f"{'noise floor: preemptible wake p99':30} {_floor(result['noise_floor']['wake_latency_p99_s'], scale)}",
    ]
    lines += [f"{label:30}" + "".join(f"{c:>{width}}" for c in cells) for label, cells in table_rows(result)]
    lines.append(f"({clock_note(scale)})")
    roles = result.get("config", {}).get("roles")
    if roles:  # the machine the figures come from (`compare --cpus N` lays out large ones)
        lines.append(f"{len(roles)} CPUs: {roles_text(roles)}")
    return "\n".join(lines)
