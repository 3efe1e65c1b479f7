"""`newsletter serve`: the public web app."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from . import cli, handle_errors, load, root_option


@cli.command()
@root_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (behind a proxy: loopback).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Worker processes.")
@click.option("--site", "with_site", is_flag=True, help="Also serve the static archive in site/.")
@click.option("--desk", "with_desk", is_flag=True, help="Also serve the editors' desk under /desk/ (signed-in staff).")
@click.option(
    "--forwarded-allow-ips",
    default="127.0.0.1",
    show_default=True,
    help="Proxies whose X-Forwarded-For is trusted for the client address (rate limits, consent records).",
)
@handle_errors
def serve(
    root: Path, host: str, port: int, workers: int, with_site: bool, with_desk: bool, forwarded_allow_ips: str
) -> None:
    """Run the public web app: one-click unsubscribe, double opt-in subscribe, /healthz.

    Meant to sit behind nginx or Caddy (docs/web.md shows both). Needs NEWSLETTER_UNSUBSCRIBE_SECRET. It
    answers only requests whose Host is one of [web] hosts (default: the host of base_url) and says
    which once it listens, with a `curl` that works from the same machine.

    \b
    Example:
      newsletter serve --port 8080 --workers 2 --site
      newsletter serve --desk      # and the editors' desk at /desk/ (docs/desk.md)
    """
    from ..web import serve_public

    load(root)  # a bad newsletter.toml is one line before anything starts

    def announce(lines: list[str]) -> None:
        for line in lines:
            click.echo(line, err=True)

    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl+C it handled
        serve_public(
            root,
            host,
            port,
            workers=workers,
            site=with_site,
            desk=with_desk,
            forwarded_allow_ips=forwarded_allow_ips,
            announce=announce,
        )
