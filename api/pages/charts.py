"""Charts drawn server-side as inline SVG: no JavaScript, no CDN, readable offline and in a screenshot.

Every function returns an SVG string (markup-safe: every label is escaped here) with ``class="chart"`` and a
``data-chart`` name, ``role="img"`` and an ``aria-label``; each mark carries a ``<title>`` (the browser shows it as a
tooltip without any script). Colours are presentation attributes, never ``style=`` (the pages' Content-Security-Policy
allows no inline style).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from html import escape
from typing import Callable, Sequence

from markupsafe import Markup

FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"'
AXIS = "#6b7280"
GRID = "#e5e7eb"
INK = "#111827"

CHANNEL_COLORS = {"web": "#2563eb", "app": "#16a34a", "store": "#f59e0b", "online": "#2563eb"}
TIER_COLORS = {"bronze": "#b45309", "silver": "#94a3b8", "gold": "#eab308", "platinum": "#6366f1"}
RISK_COLORS = {"High": "#dc2626", "Medium": "#f59e0b", "Low": "#16a34a", "N/A": "#9ca3af"}
STAGE_COLORS = ("#93c5fd", "#60a5fa", "#2563eb", "#1e3a8a")
PALETTE = ("#2563eb", "#f59e0b", "#16a34a", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#ea580c",
           "#475569")

Fmt = Callable[[float], str]


@dataclass(frozen=True)
class Series:
    """One named series of values (None: no value) drawn in one colour."""

    name: str
    values: Sequence[float | None]
    color: str


def color_for(name: str, i: int) -> str:
    """A stable colour: the channel/tier/risk colour when the name is one, else the palette's ``i``-th."""
    for table in (CHANNEL_COLORS, TIER_COLORS, RISK_COLORS):
        if name in table:
            return table[name]
    return PALETTE[i % len(PALETTE)]


def fmt_number(value: float) -> str:
    """``1234.5`` -> ``1,234.5``; integers without decimals."""
    if value is None:
        return ""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def fmt_compact(value: float) -> str:
    """Axis labels: ``1500`` -> ``1.5k``, ``2000000`` -> ``2M``."""
    a = abs(value)
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            text = f"{value / div:.1f}".rstrip("0").rstrip(".")
            return f"{text}{suffix}"
    return f"{value:g}" if not float(value).is_integer() else f"{int(value)}"


def nice_ticks(high: float, count: int = 5) -> list[float]:
    """Round tick values from 0 up to at least ``high``."""
    if high <= 0 or not math.isfinite(high):
        return [0.0, 1.0]
    raw = high / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    top = step * math.ceil(high / step - 1e-9)
    n = int(round(top / step))
    return [i * step for i in range(n + 1)]


def _svg(name: str, width: int, height: int, label: str, body: list[str]) -> Markup:
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{escape(name)}" role="img" '
            f'aria-label="{escape(label)}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'preserveAspectRatio="xMinYMin meet" {FONT}>')
    return Markup(head + "".join(body) + "</svg>")


def empty_chart(name: str, message: str, *, width: int = 640, height: int = 80) -> Markup:
    """A placeholder with a sentence (no marks: tests treat it as 'nothing to draw')."""
    return _svg(name, width, height, message, [
        f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" font-size="13" fill="{AXIS}">{escape(message)}</text>'
    ])


def _legend(items: Sequence[tuple[str, str, str]], x: float, y: float, *, right: float | None = None,
            line_height: float = 18) -> list[str]:
    """``(label, colour, kind)`` with kind ``box`` or ``line``, left to right, wrapping before ``right``."""
    out: list[str] = []
    x0 = x
    for label, color, kind in items:
        step = 28 + 7.2 * len(label)
        if right is not None and x > x0 and x + step - 8 > right:
            x, y = x0, y + line_height
        if kind == "line":
            out.append(f'<line x1="{x:.1f}" y1="{y - 4:.1f}" x2="{x + 16:.1f}" y2="{y - 4:.1f}" stroke="{color}" '
                       f'stroke-width="2.5"/>')
        else:
            out.append(f'<rect x="{x:.1f}" y="{y - 10:.1f}" width="12" height="12" rx="2" fill="{color}"/>')
        out.append(f'<text x="{x + 20:.1f}" y="{y:.1f}" font-size="12" fill="{INK}">{escape(label)}</text>')
        x += step
    return out


def legend_lines(items: Sequence[tuple[str, str, str]], x: float, right: float) -> int:
    """How many lines :func:`_legend` needs between ``x`` and ``right``."""
    lines, cur = 1, x
    for label, _, _ in items:
        step = 28 + 7.2 * len(label)
        if cur > x and cur + step - 8 > right:
            lines, cur = lines + 1, x
        cur += step
    return lines


def _y_axis(ticks: list[float], x0: float, x1: float, y_of: Callable[[float], float], fmt: Fmt) -> list[str]:
    out = []
    for t in ticks:
        y = y_of(t)
        out.append(f'<line x1="{x0:.1f}" y1="{y:.1f}" x2="{x1:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        out.append(f'<text x="{x0 - 6:.1f}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="{AXIS}">'
                   f'{escape(fmt(t))}</text>')
    return out


def _x_labels(labels: Sequence[str], x_of: Callable[[int], float], y: float, max_labels: int) -> list[str]:
    step = max(1, math.ceil(len(labels) / max_labels))
    out = []
    for i in range(0, len(labels), step):
        out.append(f'<text x="{x_of(i):.1f}" y="{y:.1f}" text-anchor="middle" font-size="11" fill="{AXIS}">'
                   f'{escape(labels[i])}</text>')
    return out


def stacked_bars(name: str, labels: Sequence[str], stacks: Sequence[Series], *, line: Series | None = None,
                 title: str, value_fmt: Fmt = fmt_number, axis_fmt: Fmt = fmt_compact, width: int = 760,
                 height: int = 280, tooltip_labels: Sequence[str] | None = None) -> Markup:
    """Bars per label stacked by series, with an optional line drawn over them (e.g. a rolling average)."""
    if not labels or not stacks and line is None:
        return empty_chart(name, f"{title}: no data in this publication", width=width)
    legend = [(s.name, s.color, "box") for s in stacks] + ([(line.name, line.color, "line")] if line else [])
    extra = 18 * (legend_lines(legend, 58, width - 12) - 1)
    height += extra
    left, right, top, bottom = 58, 12, 30 + extra, 34
    pw, ph = width - left - right, height - top - bottom
    totals = [sum(max(s.values[i] or 0.0, 0.0) for s in stacks) for i in range(len(labels))]
    line_max = max((v for v in (line.values if line else []) if v is not None), default=0.0)
    ticks = nice_ticks(max(max(totals, default=0.0), line_max))
    top_value = ticks[-1] or 1.0
    band = pw / len(labels)
    bar_w = max(min(band * 0.7, 48), 1.5)

    def x_of(i: int) -> float:
        return left + band * (i + 0.5)

    def y_of(v: float) -> float:
        return top + ph - ph * (v / top_value)

    tips = tooltip_labels or labels
    body = _y_axis(ticks, left, left + pw, y_of, axis_fmt)
    for i in range(len(labels)):
        base = 0.0
        for s in stacks:
            v = s.values[i]
            if not v or v <= 0:
                continue
            y1, y0 = y_of(base + v), y_of(base)
            body.append(f'<rect class="mark" x="{x_of(i) - bar_w / 2:.1f}" y="{y1:.1f}" width="{bar_w:.1f}" '
                        f'height="{max(y0 - y1, 0.5):.1f}" fill="{s.color}"><title>{escape(tips[i])} · '
                        f'{escape(s.name)}: {escape(value_fmt(v))}</title></rect>')
            base += v
    if line is not None:
        pts = [(x_of(i), y_of(v)) for i, v in enumerate(line.values) if v is not None]
        if len(pts) > 1:
            path = " ".join(f"{'M' if k == 0 else 'L'}{x:.1f},{y:.1f}" for k, (x, y) in enumerate(pts))
            body.append(f'<path class="mark" d="{path}" fill="none" stroke="{line.color}" stroke-width="2.5"/>')
        for i, v in enumerate(line.values):
            if v is not None:
                body.append(f'<circle class="mark" cx="{x_of(i):.1f}" cy="{y_of(v):.1f}" r="3" fill="{line.color}">'
                            f'<title>{escape(tips[i])} · {escape(line.name)}: {escape(value_fmt(v))}</title></circle>')
    body.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="{AXIS}"/>')
    body += _x_labels(labels, x_of, top + ph + 16, max(2, int(pw // 60)))
    body += _legend(legend, left, 16, right=width - right)
    return _svg(name, width, height, title, body)


def hbars(name: str, rows: Sequence[tuple[str, float, str]], *, title: str, value_fmt: Fmt = fmt_number,
          width: int = 440, label_width: int = 120, bar_height: int = 22, gap: int = 8) -> Markup:
    """Horizontal bars ``(label, value, colour)``, value printed at the end of each bar."""
    if not rows:
        return empty_chart(name, f"{title}: no data in this publication", width=width)
    top = 6
    height = top + len(rows) * (bar_height + gap) + 4
    value_room = 86
    pw = width - label_width - value_room
    high = max((v for _, v, _ in rows), default=0.0) or 1.0
    body: list[str] = []
    for k, (label, value, color) in enumerate(rows):
        y = top + k * (bar_height + gap)
        w = max(pw * max(value, 0.0) / high, 1.0 if value else 0.0)
        short = label if len(label) <= label_width // 7 else label[: label_width // 7 - 1] + "…"
        body.append(f'<text x="{label_width - 8}" y="{y + bar_height * 0.7:.1f}" text-anchor="end" font-size="12" '
                    f'fill="{INK}">{escape(short)}<title>{escape(label)}</title></text>')
        body.append(f'<rect class="mark" x="{label_width}" y="{y}" width="{w:.1f}" height="{bar_height}" rx="3" '
                    f'fill="{color}"><title>{escape(label)}: {escape(value_fmt(value))}</title></rect>')
        body.append(f'<text x="{label_width + w + 6:.1f}" y="{y + bar_height * 0.7:.1f}" font-size="12" '
                    f'fill="{INK}">{escape(value_fmt(value))}</text>')
    return _svg(name, width, height, title, body)


def grouped_hbars(name: str, groups: Sequence[tuple[str, Sequence[float]]], series: Sequence[tuple[str, str]], *,
                  title: str, value_fmt: Fmt = fmt_number, width: int = 760, label_width: int = 130) -> Markup:
    """Per group (e.g. a category) one thin bar per series (e.g. funnel stages), on one shared scale."""
    if not groups:
        return empty_chart(name, f"{title}: no data in this publication", width=width)
    bar_h, inner_gap, group_gap, top = 9, 2, 12, 28
    group_h = len(series) * (bar_h + inner_gap) - inner_gap
    height = top + len(groups) * (group_h + group_gap) + 4
    value_room = 60
    pw = width - label_width - value_room
    high = max((v for _, vals in groups for v in vals), default=0.0) or 1.0
    body = _legend([(s, c, "box") for s, c in series], label_width, 16)
    for g, (label, values) in enumerate(groups):
        y0 = top + g * (group_h + group_gap)
        short = label if len(label) <= label_width // 7 else label[: label_width // 7 - 1] + "…"
        body.append(f'<text x="{label_width - 8}" y="{y0 + group_h / 2 + 4:.1f}" text-anchor="end" font-size="12" '
                    f'fill="{INK}">{escape(short)}<title>{escape(label)}</title></text>')
        for k, ((sname, color), value) in enumerate(zip(series, values)):
            y = y0 + k * (bar_h + inner_gap)
            w = max(pw * max(value, 0.0) / high, 1.0 if value else 0.0)
            body.append(f'<rect class="mark" x="{label_width}" y="{y}" width="{w:.1f}" height="{bar_h}" rx="2" '
                        f'fill="{color}"><title>{escape(label)} · {escape(sname)}: {escape(value_fmt(value))}</title></rect>')
            body.append(f'<text x="{label_width + w + 4:.1f}" y="{y + bar_h - 1:.1f}" font-size="10" fill="{AXIS}">'
                        f'{escape(value_fmt(value))}</text>')
    return _svg(name, width, height, title, body)


def timeline(name: str, points: Sequence[tuple[dt.datetime, float, str, str]], *, title: str,
             value_fmt: Fmt = fmt_number, width: int = 760, height: int = 200) -> Markup:
    """Dots on a time axis: ``(when, value, series, tooltip)``; one row per series, dot area ~ value."""
    if not points:
        return empty_chart(name, f"{title}: no purchases", width=width)
    series = sorted({p[2] for p in points})
    left, right, top, bottom = 70, 20, 28, 30
    row_h = max((height - top - bottom) / max(len(series), 1), 24)
    height = int(top + bottom + row_h * len(series))
    pw = width - left - right
    t0 = min(p[0] for p in points)
    t1 = max(p[0] for p in points)
    real = (t1 - t0).total_seconds()
    total = max(real, 86400.0) * 1.08  # at least a day, centred on the purchases
    start = t0 + dt.timedelta(seconds=real / 2 - total / 2)
    vmax = max((abs(p[1]) for p in points), default=1.0) or 1.0

    def x_of(t: dt.datetime) -> float:
        return left + pw * (t - start).total_seconds() / total

    body: list[str] = []
    for k, s in enumerate(series):
        y = top + row_h * (k + 0.5)
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="{GRID}"/>')
        body.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" font-size="12" fill="{INK}">{escape(s)}</text>')
    for when, value, s, tip in sorted(points, key=lambda p: -abs(p[1])):
        y = top + row_h * (series.index(s) + 0.5)
        r = 3.5 + 8.5 * math.sqrt(abs(value) / vmax)
        color = color_for(s, series.index(s))
        fill = color if value >= 0 else "#ffffff"
        body.append(f'<circle class="mark" cx="{x_of(when):.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{fill}" '
                    f'fill-opacity="0.8" stroke="{color}" stroke-width="1.5"><title>{escape(tip)}</title></circle>')
    axis_y = top + row_h * len(series)
    body.append(f'<line x1="{left}" y1="{axis_y:.1f}" x2="{left + pw}" y2="{axis_y:.1f}" stroke="{AXIS}"/>')
    fmt = "%Y-%m-%d %H:%M" if total <= 3 * 86400 else "%Y-%m-%d"
    for i in range(1, 6):
        t = start + dt.timedelta(seconds=total * i / 6)
        body.append(f'<text x="{x_of(t):.1f}" y="{axis_y + 16:.1f}" text-anchor="middle" font-size="11" fill="{AXIS}">'
                    f'{escape(t.strftime(fmt))}</text>')
    body += _legend([("filled: sale · hollow: return (dot area ~ amount)", AXIS, "box")], left, 14)
    return _svg(name, width, height, title, body)
