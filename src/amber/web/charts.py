"""Server-side SVG charts: a line over time, bars per run, and groups of bars per run (one per
series, e.g. logical vs stored size). Pure: values in, markup out.

No JavaScript and no inline styles (the CSP forbids both): shapes carry classes
that ``static/amber.css`` colours, and each point or bar a ``<title>`` that
browsers show as a tooltip. Every text is escaped.
"""

from __future__ import annotations

import datetime as dt
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 480, 160
LEFT, RIGHT, TOP, BOTTOM = 64, 8, 8, 22  # margins: y labels left, dates below


@dataclass(frozen=True)
class Bar:
    label: str  # tooltip, e.g. the run's start
    value: float
    kind: str = ""  # a CSS class: "failed" colours the bar


def _frame(title: str, body: list[str], width: int, height: int) -> Markup:
    t = escape(title)
    return Markup(f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                  f'viewBox="0 0 {width} {height}" role="img" aria-label="{t}"><title>{t}</title>'
                  + "".join(body) + "</svg>")  # fmt: skip


def _empty(title: str, width: int, height: int) -> Markup:
    return _frame(title, [f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle">'
                          "no data yet</text>"], width, height)  # fmt: skip


def _y_axis(top: float, fmt: Callable[[float], str], width: int, height: int) -> list[str]:
    parts = []
    plot_h = height - TOP - BOTTOM
    for i in range(3):  # 0, half, top
        value = top * i / 2
        y = TOP + plot_h - plot_h * i / 2
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{width - RIGHT}" y2="{y:.1f}"/>')
        parts.append(f'<text x="{LEFT - 4}" y="{y + 3:.1f}" text-anchor="end">{escape(fmt(value))}</text>')
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{height - BOTTOM}"/>')
    return parts


def _nice_top(values: Sequence[float]) -> float:
    peak = max((v for v in values if math.isfinite(v)), default=0.0)
    return min(peak * 1.1, sys.float_info.max) if peak > 0 else 1.0


def line_chart(points: Sequence[tuple[float, float]], title: str, fmt: Callable[[float], str] = str,
               width: int = WIDTH, height: int = HEIGHT) -> Markup:  # fmt: skip
    """``points``: (unix time, value), any order; non-finite values are left out."""
    pts = sorted((t, v) for t, v in points if math.isfinite(t) and math.isfinite(v))
    if not pts:
        return _empty(title, width, height)
    t0, t1 = pts[0][0], pts[-1][0]
    span = (t1 - t0) or 1.0
    top = _nice_top([v for _, v in pts])
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM

    def xy(t: float, v: float) -> tuple[float, float]:
        x = LEFT + (plot_w * (t - t0) / span if len(pts) > 1 else plot_w / 2)
        return x, TOP + plot_h - max(v, 0.0) / top * plot_h

    coords = [xy(t, v) for t, v in pts]
    body = _y_axis(top, fmt, width, height)
    body.append('<polyline class="line" points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in coords) + '"/>')
    for (t, v), (x, y) in zip(pts, coords, strict=True):
        tip = escape(f"{_day(t)}: {fmt(v)}")
        body.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="2.5"><title>{tip}</title></circle>')
    body += _ends(_day(t0), _day(t1), width, height)
    return _frame(title, body, width, height)


def bar_chart(bars: Sequence[Bar], title: str, fmt: Callable[[float], str] = str,
              width: int = WIDTH, height: int = HEIGHT) -> Markup:  # fmt: skip
    """One bar per item, oldest first (left)."""
    bars = [b for b in bars if math.isfinite(b.value)]
    if not bars:
        return _empty(title, width, height)
    top = _nice_top([b.value for b in bars])
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    step = plot_w / len(bars)
    body = _y_axis(top, fmt, width, height)
    for i, b in enumerate(bars):
        h = max(b.value, 0.0) / top * plot_h
        x = LEFT + i * step + step * 0.1
        kind = f"bar {escape(b.kind)}".strip()
        tip = escape(f"{b.label}: {fmt(b.value)}")
        y, w = TOP + plot_h - h, max(step * 0.8, 1.0)
        body.append(f'<rect class="{kind}" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}">'
                    f"<title>{tip}</title></rect>")  # fmt: skip
    body += _ends(bars[0].label, bars[-1].label, width, height)
    return _frame(title, body, width, height)


@dataclass(frozen=True)
class Group:
    label: str  # tooltip prefix, e.g. the run's start
    values: tuple[float, ...]  # one per series
    kind: str = ""  # CSS classes for every bar of the group ("failed", "anomaly")


def grouped_bar_chart(groups: Sequence[Group], series: Sequence[str], title: str,
                      fmt: Callable[[float], str] = str, width: int = WIDTH,
                      height: int = HEIGHT) -> Markup:  # fmt: skip
    """Side by side per group, oldest first; series i's bars carry class ``s<i>`` and a legend entry."""
    groups = [g for g in groups if len(g.values) == len(series) and all(math.isfinite(v) for v in g.values)]
    if not groups:
        return _empty(title, width, height)
    top = _nice_top([v for g in groups for v in g.values])
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    step = plot_w / len(groups)
    bar_w = max(step * 0.8 / len(series), 1.0)
    body = _y_axis(top, fmt, width, height)
    for i, g in enumerate(groups):
        for j, (name, value) in enumerate(zip(series, g.values, strict=True)):
            h = max(value, 0.0) / top * plot_h
            x = LEFT + i * step + step * 0.1 + j * bar_w
            kind = f"bar s{j} {escape(g.kind)}".strip()
            tip = escape(f"{g.label}: {name} {fmt(value)}")
            body.append(f'<rect class="{kind}" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" '
                        f'height="{h:.1f}"><title>{tip}</title></rect>')  # fmt: skip
    for j, name in enumerate(series):  # the legend, top right
        y = TOP + 10 + 12 * j
        body.append(f'<rect class="legend s{j}" x="{width - RIGHT - 90}" y="{y - 8}" width="8" height="8"/>'
                    f'<text x="{width - RIGHT - 78}" y="{y}">{escape(name)}</text>')  # fmt: skip
    body += _ends(groups[0].label, groups[-1].label, width, height)
    return _frame(title, body, width, height)


def _ends(first: str, last: str, width: int, height: int) -> list[str]:
    """The x axis: its first and last label."""
    y = height - 6
    return [f'<text x="{LEFT}" y="{y}">{escape(first)}</text>',
            f'<text x="{width - RIGHT}" y="{y}" text-anchor="end">{escape(last)}</text>']  # fmt: skip


def _day(t: float) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d")
