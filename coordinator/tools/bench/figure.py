"""A benchmark figure: a value measured against a floor from the same run, its ratio and
target, and the table and JSON `pcpsim bench` reports them in."""

import json
import math
import sys
from dataclasses import asdict, dataclass

from coordinator.tools.progress import clear_line

# The scale figures' memory budget, wall and virtual: issue #5's median RSS per node <= 60 MB.
RSS_BUDGET_BYTES = 60 * 2**20


@dataclass
class Figure:
    name: str
    value: float
    floor: float
    unit: str
    target: str | None = None  # "<= 15" or ">= 0.5" (a bound on the ratio), None: informational
    note: str = ""

    @property
    def ratio(self) -> float:
        return ratio(self.value, self.floor)

    @property
    def ok(self) -> bool | None:
        return meets(self.ratio, self.target)

    def to_json(self) -> dict:
        d = asdict(self)
        d["ratio"] = self.ratio
        d["ok"] = self.ok
        return d


def ratio(value: float, floor: float) -> float:
    if floor == 0:
        return math.inf if value else math.nan
    return value / floor


def parse_target(target: str) -> tuple[str, float]:
    """ "<= 15" -> ("<=", 15.0). Only <= and >= bounds are meaningful for a ratio."""
    text = target.replace(" ", "")
    for op in ("<=", ">="):
        if text.startswith(op):
            return op, float(text[len(op) :].rstrip("x"))
    raise ValueError(f"target must be '<= X' or '>= X', got {target!r}")


def meets(value: float, target: str | None) -> bool | None:
    """Whether a ratio meets its target; None without a target. A NaN never meets one."""
    if target is None:
        return None
    op, bound = parse_target(target)
    if math.isnan(value):
        return False
    return value <= bound if op == "<=" else value >= bound


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        if value < 1e-3:
            return f"{value * 1e6:.2f} us"
        return f"{value * 1e3:.3f} ms"
    if unit == "B":
        return f"{value / 2**20:.1f} MB"
    if unit == "ops/s":
        return f"{value:,.0f} ops/s"
    return f"{value:.3g} {unit}".strip()


def format_table(figures: list) -> str:
    rows = [("figure", "value", "floor", "ratio", "target", "ok")]
    for f in figures:
        f = f if isinstance(f, dict) else f.to_json()
        ok = "-" if f["ok"] is None else "ok" if f["ok"] else "MISSED"
        rows.append(
            (
                f["name"],
                _fmt(f["value"], f["unit"]),
                _fmt(f["floor"], f["unit"]),
                "-" if f["ratio"] is None or not math.isfinite(f["ratio"]) else f"{f['ratio']:.2f}x",
                "-" if f["target"] is None else f["target"] + "x",
                ok,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    notes = [
        f"  {f['name']}: {f['note']}" for f in (x if isinstance(x, dict) else x.to_json() for x in figures) if f["note"]
    ]
    return "\n".join(lines + (["notes:", *notes] if notes else []))


def result_json(figures: list, quick: bool, extra: dict) -> dict:
    return {"quick": quick, "figures": [f.to_json() for f in figures], **extra}


def linear_fit(xs, ys) -> tuple[float, float]:
    """Least-squares line y = slope * x + intercept."""
    n = len(xs)
    if n < 2:
        raise ValueError("need two points for a slope")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return slope, my - slope * mx


def log(msg: str, stream=None) -> None:
    stream = stream or sys.stderr
    print(f"{clear_line(stream)}[bench] {msg}", file=stream, flush=True)


def finite(obj):
    """The result with every non-finite float (a ratio over a zero floor) as None: strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def write_json(result: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(finite(result), f, indent=2, sort_keys=True, allow_nan=False)
