"""Tiny server-side SVG charts: bars (optionally with a band, e.g. a caseload norm) and
lines. Every chart has a <title> and is shown with its numbers as a table beside it."""

from __future__ import annotations

import math
from html import escape
from itertools import count

_ids = count(1)  # unique ids for the charts' <title>s on a page

W, H, PAD_L, PAD_B, PAD_T = 560, 240, 48, 44, 16


def _scale(values: list[float], band: tuple[float, float] | None) -> float:
    top = max([*values, *(band or ()), 1])
    return max(top * 1.1, 4.0)


def _axis(top: float, fmt) -> list[str]:
    out = []
    for i in range(5):
        v = top * i / 4
        y = H - PAD_B - (H - PAD_B - PAD_T) * i / 4
        out.append(f'<line x1="{PAD_L}" x2="{W - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
                   f'{escape(fmt(round(v)))}</text>')
    return out


def bar_chart(title: str, labels: list[str], values: list[float], fmt=str,
              band: tuple[float, float] | None = None, band_label: str = "") -> str:
    top = _scale(values, band)
    inner_w, inner_h = W - PAD_L - 28, H - PAD_B - PAD_T
    n = max(len(values), 1)
    step = inner_w / n
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" '
             f'class="chart" aria-labelledby="t-{id(labels)}">',
             f'<title id="t-{id(labels)}">{escape(title)}</title>', *_axis(top, fmt)]
    if band:
        y1 = H - PAD_B - inner_h * band[1] / top
        y0 = H - PAD_B - inner_h * band[0] / top
        parts.append(f'<rect x="{PAD_L}" y="{y1:.1f}" width="{inner_w}" height="{y0 - y1:.1f}" '
                     f'class="band"><title>{escape(band_label)}</title></rect>')
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        h = inner_h * v / top
        x = PAD_L + i * step + step * 0.15
        parts.append(f'<rect x="{x:.1f}" y="{H - PAD_B - h:.1f}" width="{step * 0.7:.1f}" '
                     f'height="{h:.1f}" class="bar"><title>{escape(label)}: {escape(fmt(v))}'
                     f'</title></rect>')
        parts.append(f'<text x="{x + step * 0.35:.1f}" y="{H - PAD_B + 16}" text-anchor="middle" '
                     f'class="tick">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart(title: str, labels: list[str], values: list[float | None], fmt=str) -> str:
    present = [v for v in values if v is not None]
    top = _scale(present, None)
    inner_w, inner_h = W - PAD_L - 28, H - PAD_B - PAD_T
    n = max(len(values) - 1, 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" '
             f'class="chart" aria-labelledby="t-{id(labels)}">',
             f'<title id="t-{id(labels)}">{escape(title)}</title>', *_axis(top, fmt)]
    points = []
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        x = PAD_L + inner_w * i / n if len(values) > 1 else PAD_L + inner_w / 2
        if i % max(1, len(labels) // 8) == 0 or i == len(labels) - 1:
            parts.append(f'<text x="{x:.1f}" y="{H - PAD_B + 16}" text-anchor="middle" '
                         f'class="tick">{escape(label)}</text>')
        if v is None:
            continue
        y = H - PAD_B - inner_h * v / top
        points.append(f"{x:.1f},{y:.1f}")
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" class="dot"><title>'
                     f'{escape(label)}: {escape(fmt(v))}</title></circle>')
    if points:
        parts.insert(len(parts), f'<polyline points="{" ".join(points)}" class="line"/>')
    parts.append("</svg>")
    return "".join(parts)


def _nice(raw: float) -> float:
    """A round step for the axis (1, 2 or 5 times a power of ten), at least 1."""
    if raw <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def series_chart(title: str, labels: list[str], bars: list[tuple[str, list[float]]],
                 fmt=str, lines: list[tuple[str, list[float]]] = (),
                 ceiling: float = 1) -> str:
    """Grouped bars (one per series and label) with optional lines over them (e.g. a net
    change or a trend); negative values go below a zero line. A legend names each series."""
    values = [v for _, vs in (*bars, *lines) for v in vs if v is not None]
    hi, lo = max([*values, ceiling]), min([*values, 0])  # ceiling: e.g. 100 for per cent
    step = _nice((hi - lo) / 4)
    top = math.ceil(hi / step) * step
    bottom = math.floor(lo / step) * step if lo < 0 else 0
    if step == 1 and top - bottom < 4:  # small counts: still four steps of one
        top = bottom + 4
    span = top - bottom
    ticks = round(span / step)
    legend_h = 18
    plot_t = PAD_T + legend_h
    inner_w, inner_h = W - PAD_L - 28, H - PAD_B - plot_t

    def y(v: float) -> float:
        return H - PAD_B - inner_h * (v - bottom) / span

    uid = f"chart-{next(_ids)}"
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" '
             f'class="chart" aria-labelledby="{uid}">', f'<title id="{uid}">{escape(title)}</title>']
    for i in range(ticks + 1):
        v = bottom + step * i
        parts.append(f'<line x1="{PAD_L}" x2="{W - 8}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                     'class="grid"/>')
        parts.append(f'<text x="{PAD_L - 6}" y="{y(v) + 4:.1f}" text-anchor="end" class="tick">'
                     f'{escape(fmt(round(v) if step >= 1 else round(v, 2)))}</text>')
    if bottom < 0:
        parts.append(f'<line x1="{PAD_L}" x2="{W - 8}" y1="{y(0):.1f}" y2="{y(0):.1f}" '
                     'class="zero"/>')
    n = max(len(labels), 1)
    step = inner_w / n
    width = step * 0.8 / max(len(bars), 1)
    every = max(1, -(-len(labels) // 9))  # at most nine labels under the axis
    for i, label in enumerate(labels):
        x0 = PAD_L + i * step + step * 0.1
        for k, (name, vs) in enumerate(bars):
            v = vs[i]
            if v is None:
                continue
            y0, y1 = sorted((y(0), y(v)))
            parts.append(f'<rect x="{x0 + k * width:.1f}" y="{y0:.1f}" width="{width:.1f}" '
                         f'height="{max(y1 - y0, 0.5):.1f}" class="bar s{k}"><title>'
                         f'{escape(label)}, {escape(name)}: {escape(fmt(v))}</title></rect>')
        if i % every == 0 or i == len(labels) - 1:
            parts.append(f'<text x="{PAD_L + i * step + step / 2:.1f}" y="{H - PAD_B + 16}" '
                         f'text-anchor="middle" class="tick">{escape(label)}</text>')
    for k, (name, vs) in enumerate(lines):
        points = []
        for i, (label, v) in enumerate(zip(labels, vs, strict=True)):
            if v is None:
                continue
            x = PAD_L + i * step + step / 2
            points.append(f"{x:.1f},{y(v):.1f}")
            parts.append(f'<circle cx="{x:.1f}" cy="{y(v):.1f}" r="3.5" class="dot l{k}"><title>'
                         f'{escape(label)}, {escape(name)}: {escape(fmt(v))}</title></circle>')
        if points:
            parts.append(f'<polyline points="{" ".join(points)}" class="line l{k}"/>')
    x = PAD_L
    for k, (name, _) in enumerate(bars):
        parts.append(f'<rect x="{x}" y="{PAD_T - 10}" width="12" height="12" class="bar s{k}"/>'
                     f'<text x="{x + 16}" y="{PAD_T}" class="tick">{escape(name)}</text>')
        x += 28 + 7 * len(name)
    for k, (name, _) in enumerate(lines):
        parts.append(f'<line x1="{x}" x2="{x + 14}" y1="{PAD_T - 4}" y2="{PAD_T - 4}" '
                     f'class="line l{k}"/><text x="{x + 18}" y="{PAD_T}" class="tick">'
                     f'{escape(name)}</text>')
        x += 30 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)
