"""What `newsletter status` says about an edition's health: the breaker's pause, and the bounce and
complaint rates beside the limits mailbox providers publish — what the relay refused at send time, and
what came back later naming the edition (its return path token or the original's headers)."""

from __future__ import annotations

from datetime import date

import click

from ..config import Settings

_KINDS = ("hard", "complaint")


def edition_health(settings: Settings, day: date, paused: str, *, one_of_several: bool = False) -> None:
    """One language edition's lines. Of a list with several language editions, the reports that name
    this language only; else also those that name the day only, and those that name no edition and
    arrived that day."""
    from ..bounces import reported
    from ..delivery import edition_rates

    if paused:
        click.echo(f"{paused[:1].upper()}{paused[1:]} — newsletter send --resume once that is dealt with")
    languages = (settings.language,) if one_of_several else (settings.language, "")
    later = reported(settings, day, languages, by_arrival=not one_of_several)
    rates = edition_rates(settings, day, {kind: later.count(kind) for kind in _KINDS})
    if rates is not None:
        click.echo(rates.line())
        click.echo(f"  {later.line()}")


def day_health(settings: Settings, day: date) -> None:
    """Every language edition of `day` together: what came back for any of them, and what named none."""
    from ..bounces import reported
    from ..delivery import day_rates

    later = reported(settings, day, None)
    rates = day_rates(settings, day, {kind: later.count(kind) for kind in _KINDS})
    if rates is not None:
        click.echo(rates.line())
        click.echo(f"  {later.line()}")
