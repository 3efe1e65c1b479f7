"""What a button on the edition's page does to its plan: pure functions, a plan and a layout in, a plan out.

The layout is the edition as the editor sees it (`Layout`: the lead, then each section's stories, then
those left out). "Up" and "down" move a story within its section; the first story of a section moving up
(the last moving down) moves its whole section, because sections follow their first story. The lead
moves only by pinning another story as the lead. Every change also records the stories present now
(`known`), so a story that arrives later shows as new.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ...editorial import MAX_PREHEADER, MAX_SUBJECT, Plan


@dataclass(frozen=True)
class Layout:
    lead: str
    sections: tuple[tuple[str, tuple[str, ...]], ...]  # (section name, story ids) in reading order
    dropped: tuple[str, ...] = ()

    @property
    def order(self) -> tuple[str, ...]:
        return (self.lead, *(sid for _, ids in self.sections for sid in ids))

    @property
    def present(self) -> tuple[str, ...]:
        return (*self.order, *self.dropped)


def _with_order(plan: Plan, layout: Layout, sections: list[list[str]], lead: str) -> Plan:
    order = (lead, *(sid for ids in sections for sid in ids))
    # Left-out stories keep their place in the order, so bringing one back puts it where it was.
    kept = [sid for sid in plan.order if sid in layout.dropped]
    return replace(plan, order=(*order, *kept), known=layout.present)


def move(plan: Plan, layout: Layout, story: str, up: bool) -> Plan:
    """The plan with `story` one place up (or down) in the reading order of its section, or its section
    one place up (down) when the story is at that end of its section. Unchanged for the lead."""
    sections = [list(ids) for _, ids in layout.sections]
    where = next(((n, ids.index(story)) for n, ids in enumerate(sections) if story in ids), None)
    if where is None:
        return plan
    n, i = where
    ids = sections[n]
    step = -1 if up else 1
    if 0 <= i + step < len(ids):
        ids[i], ids[i + step] = ids[i + step], ids[i]
    elif 0 <= n + step < len(sections):
        sections[n], sections[n + step] = sections[n + step], sections[n]
    else:
        return plan
    return _with_order(plan, layout, sections, layout.lead)


def pin_lead(plan: Plan, layout: Layout, story: str) -> Plan:
    """`story` pinned as the lead ("" unpins: the ranking's lead again)."""
    if story and story not in layout.order:
        return plan
    return replace(plan, lead=story, known=layout.present, order=plan.order or layout.order)


def leave_out(plan: Plan, layout: Layout, story: str, out: bool) -> Plan:
    """`story` left out of this edition, or brought back. The last story shown is never left out."""
    dropped = [sid for sid in plan.dropped if sid != story]
    if out:
        if story not in layout.order or len(layout.order) <= 1:
            return plan
        dropped.append(story)
    lead = "" if out and plan.lead == story else plan.lead
    return replace(plan, dropped=tuple(dropped), lead=lead, known=layout.present, order=plan.order or layout.order)


def retitle(plan: Plan, layout: Layout, subject: str, preheader: str) -> Plan:
    """The subject and preheader (empty: the usual ones), on one line each, within their limits."""

    def line(text: str, limit: int) -> str:
        return " ".join("".join(c if c.isprintable() else " " for c in text).split())[:limit]

    return replace(
        plan, subject=line(subject, MAX_SUBJECT), preheader=line(preheader, MAX_PREHEADER), known=layout.present
    )
