"""Charts as inline SVG, drawn on the server: grouped bars and lines. Pure: a Chart in, markup out.

Only presentation attributes (no style attributes, no scripts, no links), so
the markup is the same in a file, a PDF and a page under a strict CSP. Every
bar and point has a ``<title>`` tooltip with its value.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from amber.ops.reports.document import Chart, seconds, size

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 70, 10, 24, 40
COLOURS = ("#2f6db5", "#e08a1e", "#3a9a5b", "#b53f3f", "#7b5ab5")


def value_text(unit: str) -> Callable[[float], str]:
    if unit == "bytes":
        return size
    if unit == "s":
        return seconds
    return lambda v: f"{v:g}"


def _axis(top: float, fmt: Callable[[float], str]) -> list[str]:
    out = []
    plot_h = HEIGHT - TOP - BOTTOM
    for i in range(5):
        y = TOP + plot_h - plot_h * i / 4
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end" '
                   f'fill="#555">{escape(fmt(top * i / 4))}</text>')  # fmt: skip
    return out


def _labels(labels: tuple[str, ...], xs: list[float]) -> list[str]:
    step = max(1, len(labels) // 10)  # at most about ten labels under the axis
    return [f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 14}" font-size="10" text-anchor="middle" '
            f'fill="#555">{escape(label[:14])}</text>'
            for i, (label, x) in enumerate(zip(labels, xs, strict=False)) if i % step == 0]  # fmt: skip


def _legend(chart: Chart) -> list[str]:
    out = []
    for i, s in enumerate(chart.series):
        x = LEFT + i * 120
        colour = COLOURS[i % len(COLOURS)]
        out.append(f'<rect x="{x}" y="{HEIGHT - 14}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{x + 14}" y="{HEIGHT - 5}" font-size="10" fill="#333">{escape(s.name)}</text>')
    return out


def render(chart: Chart) -> str:
    """The chart as one ``<svg>`` element."""
    fmt = value_text(chart.unit)
    values = [v for s in chart.series for v in s.values]
    top = max([v for v in values if v > 0], default=1.0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = max(1, len(chart.labels))
    parts = [f'<svg width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(chart.title)}">',
             f"<title>{escape(chart.title)}</title>",
             f'<text x="{LEFT}" y="14" font-size="12" font-weight="bold" fill="#222">'
             f"{escape(chart.title)}</text>",
             *_axis(top, fmt)]  # fmt: skip

    def y_of(v: float) -> float:
        return TOP + plot_h - plot_h * max(0.0, v) / top

    if chart.kind == "bars":
        group = plot_w / n
        width = group * 0.8 / max(1, len(chart.series))
        xs = [LEFT + group * (i + 0.5) for i in range(n)]
        for si, s in enumerate(chart.series):
            colour = COLOURS[si % len(COLOURS)]
            for i, v in enumerate(s.values):
                x = LEFT + group * i + group * 0.1 + width * si
                y = y_of(v)
                tip = escape(f"{chart.labels[i]} {s.name}: {fmt(v)}")
                height = TOP + plot_h - y
                parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" '
                             f'fill="{colour}"><title>{tip}</title></rect>')  # fmt: skip
    else:
        step = plot_w / max(1, n - 1)
        xs = [LEFT + step * i for i in range(n)] if n > 1 else [LEFT + plot_w / 2]
        for si, s in enumerate(chart.series):
            colour = COLOURS[si % len(COLOURS)]
            points = " ".join(f"{xs[i]:.1f},{y_of(v):.1f}" for i, v in enumerate(s.values))
            parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
            parts.extend(f'<circle cx="{xs[i]:.1f}" cy="{y_of(v):.1f}" r="3" fill="{colour}"><title>'
                         f'{escape(f"{chart.labels[i]} {s.name}: {fmt(v)}")}</title></circle>'
                         for i, v in enumerate(s.values))  # fmt: skip
    parts += _labels(chart.labels, xs) + _legend(chart) + ["</svg>"]
    return "".join(parts)


def bar_rows(chart: Chart) -> list[tuple[str, str, float, str]]:
    """(label, series, share of the largest value 0..1, value text): charts as CSS bars for mail clients."""
    fmt = value_text(chart.unit)
    top = max([v for s in chart.series for v in s.values if v > 0], default=1.0)
    return [(label, s.name, max(0.0, s.values[i]) / top, fmt(s.values[i]))
            for i, label in enumerate(chart.labels) for s in chart.series]  # fmt: skip
