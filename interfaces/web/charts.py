"""Tiny server-side SVG charts: bars (optionally with a band, e.g. a caseload norm) and
lines. Every chart has a <title> and is shown with its numbers as a table beside it."""

from __future__ import annotations

from html import escape

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
