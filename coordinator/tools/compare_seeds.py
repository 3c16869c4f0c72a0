"""`pcpsim compare --engine virtual --seeds N-M`: compare once per seed, then each figure as its median
over the seeds with its range, and each acceptance claim as held on k of n seeds.

Under virtual time a seed is one trajectory: once one operation goes another way a run parts from
another seed's, and a single figure can move far. A one-seed difference between two kernel profiles
did not survive five seeds (docs/kernel-profiles.md), and "workqueue >= 3x remote" holds on some seeds
and not on others (docs/engine.md). A claim, or a difference, is worth what it is over many seeds.

Each seed's results file is compare's own (`--json PATH` writes PATH-seedN.json per seed, byte for
byte what `--seed N --json` writes); this module only sets them side by side. A cell is the median of
the seeds' cells with min-max after it where they are numbers, the value where every seed gave the
same, else how many distinct values there were. The misses-by-cause rows are left out (a cell there is
a list, not a figure); each seed's file has them.
"""

import math
import statistics

from coordinator.tools import acceptance
from coordinator.tools.compare_table import floor_us, layout, only, roles_text, strategy_order, table_rows


def seed_path(path: str, seed: int) -> str:
    """Where seed `seed`'s results go when `path` was given: results.json -> results-seed7.json."""
    stem, dot, ext = path.rpartition(".")
    return f"{stem}-seed{seed}.{ext}" if dot and stem and "/" not in ext else f"{path}-seed{seed}"


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def summary_cell(cells: list[str]) -> str:
    """One cell from the seeds' cells of one row and strategy (see the module docstring)."""
    if len(set(cells)) == 1:
        return cells[0]
    values = [_number(c) for c in cells]
    if any(v is None for v in values):
        return f"{len(set(cells))} values"
    numbers = [v for v in values if v is not None]
    decimals = max(len(c.partition(".")[2]) for c in cells)

    def text(x: float) -> str:
        shown = f"{x:.{decimals}f}"  # an even count's median may fall between two: then one decimal more
        return shown if math.isclose(float(shown), x, abs_tol=10 ** -(decimals + 3)) else f"{x:.{decimals + 1}f}"

    return f"{text(statistics.median(numbers))} ({text(min(numbers))}-{text(max(numbers))})"


def format_table(seeds: list[int], results: list[dict]) -> str:
    names = strategy_order(results[0])
    tables = [table_rows(only(r, names), kernel_us=True) for r in results]
    floors = [floor_us(r) for r in results]
    rows = [[f"kernel us, median (min-max) of {len(seeds)} seeds", *names]]
    rows.append(["noise floor: preemptible wake p99", summary_cell(floors), *[""] * (len(names) - 1)])
    for i, (label, _) in enumerate(tables[0]):
        if label.startswith("  by what"):
            continue
        rows.append([label, *(summary_cell([t[i][1][j] for t in tables]) for j in range(len(names)))])
    first = results[0]
    lines = [f"kernel {first.get('kernel')}, seeds {_seeds_text(seeds)}, {first.get('engine', 'wall')} engine"]
    lines += layout(rows)
    lines.append("(virtual time: every time is kernel time)")
    roles = first.get("config", {}).get("roles")
    if roles:
        lines.append(f"{len(roles)} CPUs: {roles_text(roles)}")
    return "\n".join(lines)


def format_claims(seeds: list[int], results: list[dict]) -> str:
    """Each claim of coordinator.tools.acceptance, held on how many seeds, and the seeds it failed on."""
    per_seed = [acceptance.claims(r) for r in results]
    lines = []
    for i, claim in enumerate(per_seed[0]):
        failed = [seed for seed, found in zip(seeds, per_seed, strict=True) if not found[i].held]
        held = len(seeds) - len(failed)
        mark = "held  " if not failed else "FAILED" if not held else "mixed "
        where = f"; failed on seed{'s' if len(failed) > 1 else ''} {_seeds_text(failed)}" if failed and held else ""
        lines.append(f"{mark} {claim.text:50} held on {held} of {len(seeds)} seeds{where}")
    return "\n".join(lines)


def _seeds_text(seeds: list[int]) -> str:
    """1,2,3,5 -> "1-3, 5"."""
    runs: list[list[int]] = []
    for seed in seeds:
        if runs and seed == runs[-1][-1] + 1:
            runs[-1].append(seed)
        else:
            runs.append([seed])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in runs)
