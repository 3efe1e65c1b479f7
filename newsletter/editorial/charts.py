"""Charts of how the mail landed, drawn as SVG on the server: no JavaScript, no build step, no inline
style (the public app's CSP) — presentation attributes only, text in `currentColor` so light and dark
themes both read.

Each chart is an `<svg role="img">` named by its `<title>` and described by its `<desc>` (what it shows
and its largest value), and each comes with the same numbers as an HTML table (`table`): a screen reader,
a text browser and a printout get the figures, not a picture of them. Every text is escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from .landing import Landing

# Colours told apart by people with the common colour-vision deficiencies (Okabe & Ito's palette).
PALETTE = ("#0072B2", "#E69F00", "#D55E00", "#CC79A7", "#009E73", "#56B4E9", "#F0E442", "#000000")
_LEFT, _BOTTOM, _TOP, _RIGHT = 48, 36, 12, 12


def N_(message: str) -> str:
    """Marks a text for the catalogues (pybabel's N_ keyword); the caller's `gettext` translates it."""
    return message


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
    gettext: Callable[[str], str] = N_,
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
    said = {"title": title, "count": len(labels), "parts": ", ".join(names), "top": top}
    desc = (
        gettext(N_("%(title)s: %(count)s bars, each split into %(parts)s; the largest total is %(top)s.")) % said
        if labels
        else gettext(N_("%(title)s: nothing recorded in this period.")) % said
    )
    body = _axes(width, height - 14, ticks, labels) + bars + _legend(names, width, height)
    return _frame(ident, title, desc, width, height, body)


def line(
    ident: str,
    title: str,
    labels: Sequence[str],
    values: Sequence[int],
    *,
    width: int = 640,
    height: int = 220,
    gettext: Callable[[str], str] = N_,
) -> str:
    """One line over the labels (e.g. the list's size by day)."""
    top = max(values, default=0)
    ticks = _ticks(top)
    plot_h = height - _TOP - _BOTTOM
    scale = plot_h / (ticks[-1] or 1)
    slot = (width - _LEFT - _RIGHT) / max(len(labels), 1)
    points = " ".join(f"{_LEFT + slot * (n + 0.5):.1f},{_TOP + plot_h - v * scale:.1f}" for n, v in enumerate(values))
    said = {"title": title, "top": top}
    if values:
        said |= {"first": values[0], "start": labels[0], "last": values[-1], "end": labels[-1]}
    desc = (
        gettext(N_("%(title)s: from %(first)s on %(start)s to %(last)s on %(end)s; the highest is %(top)s.")) % said
        if values
        else gettext(N_("%(title)s: nothing recorded in this period.")) % said
    )
    body = _axes(width, height, ticks, labels)
    if points:
        body.append(f'<polyline points="{points}" fill="none" stroke="{PALETTE[0]}" stroke-width="2"/>')
    return _frame(ident, title, desc, width, height, body)


def table(caption: str, headers: Sequence[str], rows: Sequence[Sequence[object]], *, ident: str = "") -> str:
    """The chart's numbers as an HTML table: a caption, column headers, the first cell a row header; with
    `ident`, inside a region that scrolls sideways on a phone and can be reached by keyboard."""
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
    body = []
    for row in rows:
        cells = [f'<th scope="row">{escape(str(row[0]))}</th>', *(f"<td>{escape(str(c))}</td>" for c in row[1:])]
        body.append(f"<tr>{''.join(cells)}</tr>")
    cap = f' id="{escape(ident, quote=True)}-caption"' if ident else ""
    html = (
        f'<table class="figures"><caption{cap}>{escape(caption)}</caption><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )
    if not ident:
        return html
    labelled = f"{escape(ident, quote=True)}-caption"
    return f'<div class="scroll" role="region" tabindex="0" aria-labelledby="{labelled}">{html}</div>'


def landing_charts(figures: Landing, *, ident: str = "landing", gettext: Callable[[str], str] = N_) -> str:
    """The period as HTML: each chart followed by its table (the desk's page and `report --html` use it),
    its words through `gettext` (the desk's catalogue for the staff member's language)."""
    _ = gettext
    labels = [e.edition.strftime("%m-%d") for e in figures.editions]
    eds = figures.editions
    sent = stacked_bars(
        f"{ident}-sent",
        _(N_("Messages per edition")),
        labels,
        [
            (_(N_("delivered")), [e.delivered for e in eds]),
            (_(N_("deferred")), [e.deferred for e in eds]),
            (_(N_("failed")), [e.failed for e in eds]),
        ],
        gettext=_,
    )
    came_back = stacked_bars(
        f"{ident}-back",
        _(N_("What came back per edition")),
        labels,
        [
            (_(N_("hard bounces")), [e.bounced_hard for e in eds]),
            (_(N_("soft bounces")), [e.bounced_soft for e in eds]),
            (_(N_("complaints")), [e.complaints for e in eds]),
            (_(N_("unsubscribes")), [e.unsubscribes for e in eds]),
        ],
        gettext=_,
    )
    rows = [
        (e.edition.isoformat(), e.recipients, e.delivered, e.deferred, e.failed, e.bounced_hard, e.bounced_soft,
         e.complaints, f"{e.complaint_rate:.2%}", e.unsubscribes)
        for e in reversed(eds)
    ]  # fmt: skip
    headers = [_(N_("Edition")), _(N_("Recipients")), _(N_("delivered")), _(N_("deferred")), _(N_("failed")),
               _(N_("hard bounces")), _(N_("soft bounces")), _(N_("complaints")), _(N_("Complaint rate")),
               _(N_("unsubscribes"))]  # fmt: skip
    parts = [sent, came_back, table(_(N_("Per edition, newest first")), headers, rows, ident=f"{ident}-editions")]
    sized = [d for d in figures.days if d.list_size is not None]
    if sized:
        days_labels = [d.day.strftime("%m-%d") for d in sized]
        parts.append(
            line(
                f"{ident}-size", _(N_("Readers on the list")), days_labels, [d.list_size or 0 for d in sized], gettext=_
            )
        )
    days = [
        (d.day.isoformat(), d.signups, d.requests, d.unsubscribes, "" if d.list_size is None else d.list_size)
        for d in reversed(figures.days)
        if d.signups or d.requests or d.unsubscribes
    ]
    heads = [_(N_("Day")), _(N_("Sign-ups")), _(N_("Requests")), _(N_("unsubscribes")), _(N_("Readers on the list"))]
    parts.append(table(_(N_("Sign-ups and departures by day (days with any)")), heads, days, ident=f"{ident}-days"))
    return "\n".join(parts)
