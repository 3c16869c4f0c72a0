"""Inline SVG charts for the HTML pages (`pcpsim report --html`, a chaos run's timeline.html).

Hand-written SVG, so a page is one self-contained file: no plotting library, no network.
Every mark that carries a value has a `data-tip` attribute; the page's script
(coordinator.tools.htmlpage) shows it on hover. Each chart is an `<svg class="chart">` with a
`data-series` count, and each drawn series a `<path class="series">`, which the browser tests read.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 44
PALETTE = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


@dataclass
class Axis:
    lo: float
    hi: float
    label: str
    log: bool = False

    def __post_init__(self):
        if self.log:
            self.lo = max(self.lo, 1e-12)
            self.hi = max(self.hi, self.lo * 10)
        elif self.hi <= self.lo:
            self.hi = self.lo + 1.0

    def frac(self, v: float) -> float:
        """Where v sits between lo (0) and hi (1)."""
        if self.log:
            v = max(v, self.lo)
            return (math.log10(v) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        return (v - self.lo) / (self.hi - self.lo)

    def ticks(self) -> list[float]:
        if self.log:  # 1, 2, 5 x 10^n inside the range
            out = []
            for exp in range(math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi)) + 1):
                out += [m * 10.0**exp for m in (1, 2, 5) if self.lo <= m * 10.0**exp <= self.hi]
            # a wide range: powers of ten only, or the labels overlap
            return out if len(out) <= 12 else [t for t in out if abs(math.log10(t) - round(math.log10(t))) < 1e-9]
        raw = (self.hi - self.lo) / 6
        step = 10 ** math.floor(math.log10(raw))
        step *= next(m for m in (1, 2, 5, 10) if step * m >= raw)
        first = math.ceil(self.lo / step) * step
        return [first + i * step for i in range(int((self.hi - first) / step + 1e-9) + 1)]


@dataclass
class Chart:
    """One plot area: x and y axes, then series, bands and bars drawn in call order."""

    title: str
    x: Axis
    y: Axis
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT  # wider for lane names
    _marks: list[str] = field(default_factory=list)
    _legend: list[tuple[str, str, str]] = field(default_factory=list)
    _series: int = 0

    def px(self, v: float) -> float:
        return self.left + self.x.frac(v) * (self.width - self.left - RIGHT)

    def py(self, v: float) -> float:
        return self.height - BOTTOM - self.y.frac(v) * (self.height - TOP - BOTTOM)

    def series(self, points: Sequence[tuple[float, float]], color: str, label: str, tip, step: bool = False, dash=""):
        """A line through `points` (a staircase if `step`: each y holds until the next x), a
        hover dot on each point with tip(x, y) as its text."""
        if not points:
            self._legend.append((color, f"{label} (no data)", dash))
            return
        self._series += 1
        coords = []
        for i, (x, y) in enumerate(points):
            if step and i:
                coords.append((self.px(x), self.py(points[i - 1][1])))
            coords.append((self.px(x), self.py(y)))
        d = "M" + " L".join(f"{a:.1f},{b:.1f}" for a, b in coords)
        self._marks.append(
            f'<path class="series" d="{d}" fill="none" stroke="{color}" stroke-width="2"'
            + (f' stroke-dasharray="{dash}"' if dash else "")
            + f' data-label="{escape(label)}"/>'
        )
        self._marks += [
            f'<circle class="pt" cx="{self.px(x):.1f}" cy="{self.py(y):.1f}" r="3" fill="{color}" '
            f'data-tip="{escape(label + ": " + tip(x, y))}"/>'
            for x, y in points
        ]
        self._legend.append((color, label, dash))

    def dots(self, points: list[tuple[float, float, str, str]]) -> None:
        """Scatter points (x, y, colour, tip)."""
        self._series += bool(points)
        self._marks += [
            f'<circle class="pt" cx="{self.px(x):.1f}" cy="{self.py(y):.1f}" r="4" fill="{c}" data-tip="{escape(t)}"/>'
            for x, y, c, t in points
        ]

    def band(self, x0: float, x1: float, color: str, tip: str) -> None:
        """A shaded vertical band over the whole plot height (a fault's span)."""
        a, b = self.px(x0), self.px(x1)
        self._marks.append(
            f'<rect class="band" x="{a:.1f}" y="{TOP}" width="{max(b - a, 1):.1f}" '
            f'height="{self.height - TOP - BOTTOM}" fill="{color}" fill-opacity="0.18" data-tip="{escape(tip)}"/>'
        )

    def bar(self, x0: float, x1: float, row: float, color: str, tip: str, cls: str = "bar") -> None:
        """A horizontal bar from x0 to x1 centred on y=row (a timeline lane)."""
        a, b = self.px(x0), self.px(x1)
        h = min(18.0, (self.height - TOP - BOTTOM) / max(1.0, self.y.hi - self.y.lo) * 0.7)
        self._marks.append(
            f'<rect class="{cls}" x="{a:.1f}" y="{self.py(row) - h / 2:.1f}" width="{max(b - a, 2):.1f}" '
            f'height="{h:.1f}" fill="{color}" data-tip="{escape(tip)}"/>'
        )

    def legend(self, color: str, label: str) -> None:
        self._legend.append((color, label, ""))

    def render(self, y_labels: dict[float, str] | None = None) -> str:
        """The SVG; y_labels replaces the y axis's numeric ticks (timeline lanes)."""
        w, h, left = self.width, self.height, self.left
        out = [
            f'<svg class="chart" data-series="{self._series}" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
            f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(self.title)}">',
            f'<rect x="{left}" y="{TOP}" width="{w - left - RIGHT}" height="{h - TOP - BOTTOM}" class="plot"/>',
        ]
        for t in self.x.ticks():
            x = self.px(t)
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{h - BOTTOM}" class="grid"/>')
            out.append(f'<text x="{x:.1f}" y="{h - BOTTOM + 14}" class="tick" text-anchor="middle">{t:g}</text>')
        ticks = y_labels or {t: f"{t:g}" for t in self.y.ticks()}
        for t, text in ticks.items():
            y = self.py(t)
            out.append(f'<line x1="{self.left}" x2="{w - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
            out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" class="tick" text-anchor="end">{escape(text)}</text>')
        out += self._marks
        out.append(f'<text x="{(self.left + w - RIGHT) / 2}" y="{h - 8}" class="label" text-anchor="middle">')
        out.append(f"{escape(self.x.label)}</text>")
        if not y_labels:
            out.append(
                f'<text transform="translate(14 {(TOP + h - BOTTOM) / 2}) rotate(-90)" class="label" '
                f'text-anchor="middle">{escape(self.y.label)}</text>'
            )
        out.append("</svg>")
        legend = "".join(
            f'<li><span class="swatch" style="border-top: 3px {"dashed" if dash else "solid"} {c}"></span>'
            f"{escape(text)}</li>"
            for c, text, dash in self._legend
        )
        return (
            f"<figure><figcaption>{escape(self.title)}</figcaption>{''.join(out)}"
            + (f'<ul class="legend">{legend}</ul>' if legend else "")
            + "</figure>"
        )
