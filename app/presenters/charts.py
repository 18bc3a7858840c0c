"""Server-rendered SVG charts: bar and line, with axes, labels, ``<title>``/``<desc>`` and a data table.

No JavaScript and no chart library: each function returns a ``Chart`` whose ``svg`` is a
self-contained, accessible ``<svg role="img">`` (its title and description are referenced by
``aria-labelledby``/``aria-describedby``; every bar and point carries its own ``<title>`` as a
tooltip) and whose ``table`` is the same data as rows, rendered next to the chart as its text
alternative. Every label is XML-escaped here, so model names and other stored text are safe.
Colours come from CSS classes (``chart-*``, ``series-N``) so light and dark themes both work.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape as _xml_escape

from django.utils.safestring import SafeString, mark_safe

WIDTH = 560
HEIGHT = 260
MARGIN_LEFT = 56
MARGIN_RIGHT = 40
MARGIN_TOP = 16
MARGIN_BOTTOM = 52
MAX_X_LABELS = 8
LABEL_CHARS = 18

Formatter = Callable[[float], str]


def escape(text: object) -> str:
    """Escape text for SVG/XML content and attribute values."""
    return _xml_escape(str(text), {'"': "&quot;", "'": "&#x27;"})


def format_number(value: float) -> str:
    """Short human form: 1234 -> '1,234', 0.25 -> '0.25', 1.5e6 -> '1.5M'."""
    if value is None or not math.isfinite(value):
        return "—"
    magnitude = abs(value)
    if magnitude >= 1_000_000:
        return f"{value / 1_000_000:.3g}M"
    if magnitude >= 10_000:
        return f"{value / 1000:.3g}k"
    if magnitude >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.3g}"


@dataclass(frozen=True)
class Bar:
    label: str
    value: float


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]  # one per x label; None = no data (a gap in the line)


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Chart:
    chart_id: str
    title: str
    description: str
    svg: SafeString
    table: Table
    points: int = 0  # bars or plotted points, for tests and the page


def nice_ticks(maximum: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``maximum`` (about ``count`` of them)."""
    if maximum <= 0 or not math.isfinite(maximum):
        return [0.0, 1.0]
    raw_step = maximum / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw_step))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw_step)
    top = math.ceil(maximum / step - 1e-9) * step
    ticks = [round(i * step, 10) for i in range(int(round(top / step)) + 1)]
    return ticks if len(ticks) > 1 else [0.0, step]


def _short(label: str, limit: int = LABEL_CHARS) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _num(value: float) -> str:
    """Coordinates with at most one decimal, no trailing zeros."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


class _Plot:
    """The drawing area and the y scale shared by both chart kinds."""

    def __init__(self, *, maximum: float, width: int = WIDTH, height: int = HEIGHT) -> None:
        self.width, self.height = width, height
        self.left, self.right = MARGIN_LEFT, width - MARGIN_RIGHT
        self.top, self.bottom = MARGIN_TOP, height - MARGIN_BOTTOM
        self.ticks = nice_ticks(maximum)
        self.y_max = self.ticks[-1]

    def y(self, value: float) -> float:
        return self.bottom - (value / self.y_max) * (self.bottom - self.top)

    def axes(self, *, y_label: str, format_value: Formatter) -> list[str]:
        parts = ['<g class="chart-axes" aria-hidden="true">']
        for tick in self.ticks:
            y = _num(self.y(tick))
            parts.append(f'<line class="chart-grid" x1="{self.left}" x2="{self.right}" y1="{y}" y2="{y}"/>')
            parts.append(
                f'<text class="chart-tick" x="{self.left - 6}" y="{y}" text-anchor="end" dominant-baseline="middle">'
                f"{escape(format_value(tick))}</text>"
            )
        parts.append(f'<line class="chart-axis" x1="{self.left}" x2="{self.left}" y1="{self.top}" y2="{self.bottom}"/>')
        parts.append(
            f'<line class="chart-axis" x1="{self.left}" x2="{self.right}" y1="{self.bottom}" y2="{self.bottom}"/>'
        )
        middle = _num((self.top + self.bottom) / 2)
        parts.append(
            f'<text class="chart-axis-label" x="12" y="{middle}" text-anchor="middle" '
            f'transform="rotate(-90 12 {middle})">{escape(y_label)}</text>'
        )
        parts.append("</g>")
        return parts

    def x_label(self, x: float, text: str, *, limit: int = LABEL_CHARS) -> str:
        y = self.bottom + 16
        short = escape(_short(text, min(limit, LABEL_CHARS)))
        return f'<text class="chart-label" x="{_num(x)}" y="{y}" text-anchor="middle">{short}</text>'


def _open_svg(chart_id: str, title: str, description: str, kind: str) -> list[str]:
    return [
        f'<svg id="{escape(chart_id)}" class="chart chart-{kind}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="{escape(chart_id)}-title" aria-describedby="{escape(chart_id)}-desc" '
        'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMidYMid meet">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(description)}</desc>',
    ]


def _empty_message(plot: _Plot) -> str:
    x, y = _num((plot.left + plot.right) / 2), _num((plot.top + plot.bottom) / 2)
    return f'<text class="chart-empty" x="{x}" y="{y}" text-anchor="middle">No data in this range</text>'


def bar_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    bars: Sequence[Bar],
    y_label: str,
    format_value: Formatter = format_number,
    value_header: str | None = None,
) -> Chart:
    """Vertical bars, one per label, with the value above each bar."""
    plot = _Plot(maximum=max((bar.value for bar in bars), default=0.0))
    parts = _open_svg(chart_id, title, description, "bar")
    parts += plot.axes(y_label=y_label, format_value=format_value)
    slot = (plot.right - plot.left) / max(1, len(bars))
    bar_width = min(64.0, slot * 0.7)
    parts.append('<g class="chart-bars">')
    for index, bar in enumerate(bars):
        center = plot.left + slot * (index + 0.5)
        top = plot.y(max(0.0, bar.value))
        height = plot.bottom - top
        text = f"{bar.label}: {format_value(bar.value)}"
        parts.append(
            f'<rect class="chart-bar series-{index % 6}" x="{_num(center - bar_width / 2)}" y="{_num(top)}" '
            f'width="{_num(bar_width)}" height="{_num(height)}" data-label="{escape(bar.label)}" '
            f'data-value="{escape(format_value(bar.value))}"><title>{escape(text)}</title></rect>'
        )
        parts.append(
            f'<text class="chart-value" x="{_num(center)}" y="{_num(top - 4)}" text-anchor="middle">'
            f"{escape(format_value(bar.value))}</text>"
        )
        parts.append(plot.x_label(center, bar.label, limit=max(4, int(slot / 7))))
    parts.append("</g>")
    if not bars:
        parts.append(_empty_message(plot))
    parts.append("</svg>")
    table = Table(
        headers=["", value_header or y_label],
        rows=[[bar.label, format_value(bar.value)] for bar in bars],
    )
    return _chart(chart_id, title, description, parts, table, points=len(bars))


def line_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    x_labels: Sequence[str],
    series: Sequence[Series],
    y_label: str,
    format_value: Formatter = format_number,
    tick_labels: Sequence[str] | None = None,
) -> Chart:
    """One line per series over shared x labels; a point (circle with a tooltip) at each value.

    ``tick_labels`` (same length as ``x_labels``) are shorter texts for the axis; tooltips and the
    data table keep the full ``x_labels``."""
    values = [v for one in series for v in one.values if v is not None]
    plot = _Plot(maximum=max(values, default=0.0))
    parts = _open_svg(chart_id, title, description, "line")
    parts += plot.axes(y_label=y_label, format_value=format_value)
    count = len(x_labels)
    step = (plot.right - plot.left) / max(1, count - 1) if count > 1 else 0.0

    def x_at(index: int) -> float:
        return plot.left + step * index if count > 1 else (plot.left + plot.right) / 2

    label_every = max(1, math.ceil(count / MAX_X_LABELS))
    parts.append('<g class="chart-x-labels">')
    for index, label in enumerate(x_labels):
        if index % label_every == 0:
            tick = tick_labels[index] if tick_labels is not None else label
            parts.append(plot.x_label(x_at(index), tick, limit=max(4, int(step * label_every / 7))))
    parts.append("</g>")
    plotted = 0
    for number, one in enumerate(series):
        parts.append(f'<g class="chart-series series-{number % 6}" data-series="{escape(one.name)}">')
        for segment in _segments(one.values):
            path = " ".join(
                f"{'M' if i == 0 else 'L'}{_num(x_at(index))},{_num(plot.y(value))}"
                for i, (index, value) in enumerate(segment)
            )
            parts.append(f'<path class="chart-line" d="{path}" fill="none"/>')
        for index, value in enumerate(one.values):
            if value is None:
                continue
            plotted += 1
            text = f"{one.name}, {x_labels[index]}: {format_value(value)}"
            parts.append(
                f'<circle class="chart-point" cx="{_num(x_at(index))}" cy="{_num(plot.y(value))}" r="3" '
                f'data-x="{escape(x_labels[index])}" data-value="{escape(format_value(value))}">'
                f"<title>{escape(text)}</title></circle>"
            )
        parts.append("</g>")
    parts += _legend(series, plot)
    if not values:
        parts.append(_empty_message(plot))
    parts.append("</svg>")
    table = Table(
        headers=["", *(one.name for one in series)],
        rows=[
            [label, *("—" if one.values[i] is None else format_value(one.values[i] or 0.0) for one in series)]
            for i, label in enumerate(x_labels)
        ],
    )
    return _chart(chart_id, title, description, parts, table, points=plotted)


def _segments(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """Runs of consecutive values; a None breaks the line."""
    segments: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] = []
    for index, value in enumerate(values):
        if value is None:
            if current:
                segments.append(current)
            current = []
        else:
            current.append((index, value))
    if current:
        segments.append(current)
    return segments


def _legend(series: Sequence[Series], plot: _Plot) -> list[str]:
    if len(series) < 2:
        return []
    parts = ['<g class="chart-legend" aria-hidden="true">']
    x = float(plot.left)
    y = plot.height - 12
    for number, one in enumerate(series):
        name = _short(one.name, 24)
        parts.append(
            f'<rect class="chart-swatch series-{number % 6}" x="{_num(x)}" y="{y - 8}" width="10" height="10"/>'
        )
        parts.append(f'<text class="chart-legend-label" x="{_num(x + 14)}" y="{y + 1}">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    parts.append("</g>")
    return parts


def _chart(chart_id: str, title: str, description: str, parts: list[str], table: Table, *, points: int) -> Chart:
    return Chart(
        chart_id=chart_id,
        title=title,
        description=description,
        svg=mark_safe("".join(parts)),  # noqa: S308 - every interpolated value in ``parts`` is escaped
        table=table,
        points=points,
    )
