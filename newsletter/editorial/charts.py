"""Charts of how the mail landed, drawn as SVG on the server: no JavaScript, no build step, no inline
style (the public app's CSP) — presentation attributes only, text in `currentColor` so light and dark
themes both read.

Each chart is an `<svg role="img">` named by its `<title>` and described by its `<desc>` (what it shows
and its largest value), and each comes with the same numbers as an HTML table (`table`): a screen reader,
a text browser and a printout get the figures, not a picture of them. Every text is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from .landing import Landing

# Colours told apart by people with the common colour-vision deficiencies (Okabe & Ito's palette).
PALETTE = ("#0072B2", "#E69F00", "#D55E00", "#CC79A7", "#009E73", "#56B4E9", "#F0E442", "#000000")
_LEFT, _BOTTOM, _TOP, _RIGHT = 48, 36, 12, 12


def _ticks(top: int) -> list[int]:
    """Up to five round values from 0 to at least `top`."""
    if top <= 0:
        return [0, 1]
    step = 1
    while top / step > 5:
        for factor in (2, 2.5, 2):
            step = int(step * factor)
            if top / step <= 5:
                break
    return list(range(0, top + step, step))[:7]


def _frame(ident: str, title: str, desc: str, width: int, height: int, body: list[str]) -> str:
    i = escape(ident, quote=True)
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
            f'width="100%" aria-labelledby="{i}-title {i}-desc" id="{i}">',
            f'<title id="{i}-title">{escape(title)}</title>',
            f'<desc id="{i}-desc">{escape(desc)}</desc>',
            *body,
            "</svg>",
        ]
    )


def _axes(width: int, height: int, ticks: list[int], labels: Sequence[str]) -> list[str]:
    plot_h = height - _TOP - _BOTTOM
    top = ticks[-1] or 1
    out = ['<g fill="currentColor" font-size="11" font-family="sans-serif" aria-hidden="true">']
    for t in ticks:
        y = _TOP + plot_h - plot_h * t / top
        out.append(
            f'<line x1="{_LEFT}" x2="{width - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="currentColor" '
            'stroke-opacity="0.2"/>'
        )
        out.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{t}</text>')
    step = max(1, len(labels) // 8)  # at most about eight labels under the axis
    slot = (width - _LEFT - _RIGHT) / max(len(labels), 1)
    for n, label in enumerate(labels):
        if n % step == 0 or n == len(labels) - 1:
            x = _LEFT + slot * (n + 0.5)
            out.append(f'<text x="{x:.1f}" y="{height - _BOTTOM + 16}" text-anchor="middle">{escape(label)}</text>')
    out.append("</g>")
    return out


def _legend(names: Sequence[str], width: int, height: int) -> list[str]:
    out = ['<g font-size="11" font-family="sans-serif" aria-hidden="true">']
    x = _LEFT
    for n, name in enumerate(names):
        out.append(f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{PALETTE[n % len(PALETTE)]}"/>')
        out.append(f'<text x="{x + 14}" y="{height - 5}" fill="currentColor">{escape(name)}</text>')
        x += 22 + 7 * len(name)
    out.append("</g>")
    return out


def stacked_bars(
    ident: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[int]]],
    *,
    width: int = 640,
    height: int = 260,
) -> str:
    """One bar per label, its parts stacked in series order (e.g. delivered, deferred, failed)."""
    totals = [sum(values[n] for _, values in series) for n in range(len(labels))]
    top = max(totals, default=0)
    ticks = _ticks(top)
    plot_h = height - _TOP - _BOTTOM - 14
    scale = plot_h / (ticks[-1] or 1)
    slot = (width - _LEFT - _RIGHT) / max(len(labels), 1)
    bars = []
    for n, label in enumerate(labels):
        y = float(_TOP + plot_h)
        for k, (name, values) in enumerate(series):
            h = values[n] * scale
            if h <= 0:
                continue
            y -= h
            bars.append(
                f'<rect x="{_LEFT + slot * n + slot * 0.15:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
                f'height="{h:.1f}" fill="{PALETTE[k % len(PALETTE)]}"><title>{escape(label)}: {escape(name)} '
                f"{values[n]}</title></rect>"
            )
    names = [name for name, _ in series]
    desc = (
        f"{title}: {len(labels)} bars, each split into {', '.join(names)}; the largest total is {top}."
        if labels
        else f"{title}: nothing recorded in this period."
    )
    body = _axes(width, height - 14, ticks, labels) + bars + _legend(names, width, height)
    return _frame(ident, title, desc, width, height, body)


def line(
    ident: str, title: str, labels: Sequence[str], values: Sequence[int], *, width: int = 640, height: int = 220
) -> str:
    """One line over the labels (e.g. the list's size by day)."""
    top = max(values, default=0)
    ticks = _ticks(top)
    plot_h = height - _TOP - _BOTTOM
    scale = plot_h / (ticks[-1] or 1)
    slot = (width - _LEFT - _RIGHT) / max(len(labels), 1)
    points = " ".join(f"{_LEFT + slot * (n + 0.5):.1f},{_TOP + plot_h - v * scale:.1f}" for n, v in enumerate(values))
    desc = (
        f"{title}: from {values[0]} on {labels[0]} to {values[-1]} on {labels[-1]}; the highest is {top}."
        if values
        else f"{title}: nothing recorded in this period."
    )
    body = _axes(width, height, ticks, labels)
    if points:
        body.append(f'<polyline points="{points}" fill="none" stroke="{PALETTE[0]}" stroke-width="2"/>')
    return _frame(ident, title, desc, width, height, body)


def table(caption: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """The chart's numbers as an HTML table: a caption, column headers, the first cell a row header."""
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
    body = []
    for row in rows:
        cells = [f'<th scope="row">{escape(str(row[0]))}</th>', *(f"<td>{escape(str(c))}</td>" for c in row[1:])]
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<table class="figures"><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def landing_charts(figures: Landing, *, ident: str = "landing") -> str:
    """The period as HTML: each chart followed by its table (the desk's page and `report --html` use it)."""
    labels = [e.edition.strftime("%m-%d") for e in figures.editions]
    eds = figures.editions
    sent = stacked_bars(
        f"{ident}-sent",
        "Messages per edition",
        labels,
        [
            ("delivered", [e.delivered for e in eds]),
            ("deferred", [e.deferred for e in eds]),
            ("failed", [e.failed for e in eds]),
        ],
    )
    came_back = stacked_bars(
        f"{ident}-back",
        "What came back per edition",
        labels,
        [
            ("hard bounces", [e.bounced_hard for e in eds]),
            ("soft bounces", [e.bounced_soft for e in eds]),
            ("complaints", [e.complaints for e in eds]),
            ("unsubscribes", [e.unsubscribes for e in eds]),
        ],
    )
    rows = [
        (
            e.edition.isoformat(),
            e.recipients,
            e.delivered,
            e.deferred,
            e.failed,
            e.bounced_hard,
            e.bounced_soft,
            e.complaints,
            f"{e.complaint_rate:.2%}",
            e.unsubscribes,
        )
        for e in reversed(eds)
    ]
    headers = (
        "Edition",
        "Recipients",
        "Delivered",
        "Deferred",
        "Failed",
        "Hard bounces",
        "Soft bounces",
        "Complaints",
        "Complaint rate",
        "Unsubscribes",
    )
    parts = [sent, came_back, table("Per edition, newest first", headers, rows)]
    sized = [d for d in figures.days if d.list_size is not None]
    if sized:
        parts.append(
            line(
                f"{ident}-size",
                "Readers on the list",
                [d.day.strftime("%m-%d") for d in sized],
                [d.list_size or 0 for d in sized],
            )
        )
    days = [
        (d.day.isoformat(), d.signups, d.requests, d.unsubscribes, "" if d.list_size is None else d.list_size)
        for d in reversed(figures.days)
        if d.signups or d.requests or d.unsubscribes
    ]
    parts.append(
        table(
            "Sign-ups and departures by day (days with any)",
            ("Day", "Sign-ups", "Requests", "Unsubscribes", "List size"),
            days,
        )
    )
    return "\n".join(parts)
