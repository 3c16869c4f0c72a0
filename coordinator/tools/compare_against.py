"""Two `pcpsim compare` results side by side (`pcpsim report A.json --against B.json`): compare's rows
(coordinator.tools.compare_table) for the strategies both ran, each strategy's A and B next to each
other, every time in kernel µs. Two runs made at different time scales, on two engines or two machines,
are read on one scale only so: a wall run's milliseconds are its host's, its kernel µs the model's. What
the two runs were asked to do differently (seed, engine, noise model, kernel, layout, costs, schedule)
is listed above the table, so a difference in the figures can be told from a difference in the question.
docs/engine.md's side-by-side table of both engines is this command's output."""

from coordinator.tools import results_file
from coordinator.tools.compare_table import (
    floor_us,
    layout,
    only,
    roles_text,
    strategy_order,
    table_rows,
)

# The results' fields a run's question is made of: (what, how it is read). The engine and noise model
# are absent from wall results (their defaults below); config.costs' time_scale is the engine's clock,
# not the question.
_ASKED = (
    ("engine", lambda r: r.get("engine", "wall")),
    ("noise model", lambda r: r.get("noise", "-")),
    ("seed", lambda r: r.get("seed")),
    ("kernel", lambda r: r.get("kernel")),
    ("roles", lambda r: _roles(r.get("config", {}).get("roles"))),
    ("measure_s", lambda r: r.get("config", {}).get("measure_s")),
    ("warmup_s", lambda r: r.get("config", {}).get("warmup_s")),
    ("drain_interval_s", lambda r: r.get("config", {}).get("drain_interval_s")),
    ("trigger mix", lambda r: r.get("config", {}).get("trigger_mix")),
    ("workload", lambda r: _file(r.get("config", {}).get("workload"))),
    ("costs", lambda r: _costs(r.get("config", {}).get("costs"))),
)


class NotComparable(ValueError):
    """Two results files that cannot be set side by side: no strategy both ran, or a field the table
    reads that is not what compare writes (the message names it)."""


def check(result: dict, name: str) -> None:
    """Raise NotComparable naming the first field the table would read that compare does not write so.
    results_file.load_results checked it already; a result built in memory gets the same check."""
    try:
        results_file.validate_table(result)
    except results_file.ReportError as err:
        raise NotComparable(f"{name}: {err}") from None


def _costs(costs):
    return {k: v for k, v in costs.items() if k != "time_scale"} if isinstance(costs, dict) else costs


def _file(source):
    """A file the run read: its name and the start of its contents' sha256 (compare_results.input_file)."""
    if isinstance(source, dict) and isinstance(source.get("file"), str) and isinstance(source.get("sha256"), str):
        return f"{source['file']} (sha256 {source['sha256'][:12]})"
    return source


def _roles(roles):
    return roles_text(roles) if isinstance(roles, list) and all(isinstance(r, str) for r in roles) else roles


def differences(a: dict, b: dict) -> list[str]:
    """What the two runs were asked differently, one line each: "seed: 1 | 7"."""
    return [f"{what}: {read(a)} | {read(b)}" for what, read in _ASKED if read(a) != read(b)]


def format_against(a: dict, b: dict, name_a: str, name_b: str) -> str:
    """The table: a label column, then per strategy both ran (in A's order) A's cell and B's."""
    check(a, name_a)
    check(b, name_b)
    common = [n for n in strategy_order(a) if n in b["strategies"]]
    if not common:
        raise NotComparable(
            f"{name_a} ran {', '.join(a['strategies'])} and {name_b} ran {', '.join(b['strategies'])}: "
            "no strategy in common to set side by side"
        )
    rows_a, rows_b = (table_rows(only(r, common), kernel_us=True) for r in (a, b))
    header = ["kernel us"] + [f"{n} {side}" for n in common for side in ("A", "B")]
    floor = [floor_us(a), floor_us(b)] + [""] * (2 * len(common) - 2)
    body = [["noise floor: preemptible wake p99", *floor]]
    for (label, cells_a), (_, cells_b) in zip(rows_a, rows_b, strict=True):
        body.append([label, *(c for pair in zip(cells_a, cells_b, strict=True) for c in pair)])
    lines = [f"A: {name_a} ({_summary(a)})", f"B: {name_b} ({_summary(b)})"]
    lines += [f"differs: {d}" for d in differences(a, b)] or ["asked the same (seed, engine, layout, costs, schedule)"]
    for side, r, other in (("A", a, b), ("B", b, a)):
        alone = [n for n in strategy_order(r) if n not in other["strategies"]]
        if alone:
            lines.append(f"only in {side}, left out: {', '.join(alone)}")
    return "\n".join(lines + layout([header, *body]))


def _summary(result: dict) -> str:
    roles = result.get("config", {}).get("roles")
    roles = roles if isinstance(roles, list) else []
    engine, kernel = result.get("engine", "wall"), result.get("kernel", "?")
    return f"{engine} engine, kernel {kernel}, seed {result.get('seed')}, {len(roles)} CPUs"
