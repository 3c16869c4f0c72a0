"""The shell of pcpsim's self-contained HTML pages: style, the hover script, escaping.

One file, nothing fetched: the style and the script are inline, the figures inline SVG
(coordinator.tools.svg). The script shows any element's `data-tip` in a floating box
under the pointer; it is the page's only script.
"""

from html import escape

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1400px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ccc; }
h3 { font-size: 15px; }
table { border-collapse: collapse; margin: 8px 0; } td, th { padding: 2px 8px; border: 1px solid #ddd; }
th { background: #f4f4f4; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.row { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
pre { background: #f8f8f8; padding: 8px; overflow-x: auto; }
figure { display: inline-block; margin: 8px 16px 8px 0; vertical-align: top; }
figcaption { font-weight: 600; margin-bottom: 4px; }
svg.chart { background: #fff; } svg .plot { fill: none; stroke: #999; } svg .grid { stroke: #eee; }
svg .tick { font-size: 11px; fill: #555; } svg .label { font-size: 12px; fill: #333; }
svg .pt { fill-opacity: 0.9; } svg .pt:hover, svg .bar:hover { stroke: #000; stroke-width: 1.5; }
ul.legend { list-style: none; padding: 0; margin: 4px 0 0 64px; font-size: 12px; }
ul.legend li { display: inline-block; margin-right: 14px; }
.swatch { display: inline-block; width: 22px; height: 0; margin-right: 4px; vertical-align: middle; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 6px 10px; }
.verdict { font-size: 18px; padding: 10px 14px; color: #fff; display: inline-block; border-radius: 4px; }
#tip { position: fixed; pointer-events: none; background: #222; color: #fff; font-size: 12px;
       padding: 3px 6px; border-radius: 3px; display: none; white-space: pre; z-index: 10; }
"""

SCRIPT = """
const tip = document.getElementById("tip");
document.addEventListener("mouseover", (e) => {
  const t = e.target.closest("[data-tip]");
  if (!t) { tip.style.display = "none"; return; }
  tip.textContent = t.dataset.tip;
  tip.style.display = "block";
});
document.addEventListener("mousemove", (e) => {
  tip.style.left = (e.clientX + 12) + "px";
  tip.style.top = (e.clientY + 12) + "px";
});
"""


def page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f'<body><h1>{escape(title)}</h1>{body}<div id="tip"></div><script>{SCRIPT}</script></body></html>\n'
    )


def table(header: list[str], rows: list[list], numeric_from: int = 1) -> str:
    """An HTML table; cells from column numeric_from on are right-aligned."""
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if i >= numeric_from else ''}>{escape(str(c))}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write(path: str, html: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(html)
