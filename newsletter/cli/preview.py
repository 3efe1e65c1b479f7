"""`newsletter preview`: the local preview server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError
from . import cli, handle_errors, load_newsletters, newsletter_option, root_option

DEFAULT_PORT = 8000


def _preview_table(settings: Any) -> tuple[str | None, int | None]:
    """`[preview] host` and `port` from the config, checked here since this stage owns the table."""
    table = settings.section("preview")
    unknown = sorted(set(table) - {"host", "port"})
    if unknown:
        raise ConfigError(f"[preview] has an unknown setting '{unknown[0]}' (known: host, port)")
    host, port = table.get("host"), table.get("port")
    if host is not None and not isinstance(host, str):
        raise ConfigError(f"[preview] host must be text such as 127.0.0.1, got {host!r}")
    if port is not None:
        port = settings.table("preview").whole("port", port, 0, 65535)
    return host, port


@cli.command()
@root_option
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help=f"Port on 127.0.0.1 (default: [preview] port, else {DEFAULT_PORT}; 0 picks a free one).",
)
@click.option(
    "--host",
    default=None,
    help="Loopback address to listen on: 127.0.0.1 (default), ::1 or localhost. Nothing else is accepted.",
)
@newsletter_option
@handle_errors
def preview(root: Path, port: int | None, host: str | None, newsletter_id: str | None) -> None:
    """Serve a live preview of the editions at http://127.0.0.1:8000/.

    Every edition, built or not, rendered in memory exactly as subscribers get it: the HTML email at
    phone and desktop widths and in dark mode, the plain text, the .eml and the manifest. Saving a
    story, a template or newsletter.toml updates the open page within a second; a broken story shows
    its error above the last good render. Nothing is written to the outbox unless you ask.

    \b
    Example:
      newsletter preview --root . --port 8000
      newsletter preview --newsletter weekly   # another newsletter of [newsletters.<id>]
    """
    from ..web import Previewer, loopback_host, serve

    if newsletter_id:
        load_newsletters(root, newsletter_id)  # an unknown newsletter is the CLI's one-line error
    previewer = Previewer(root, newsletter=newsletter_id)
    config_host, config_port = _preview_table(previewer.settings)
    asked = host if host is not None else (config_host or "127.0.0.1")
    try:
        bind_host = loopback_host(asked)
    except ValueError as exc:
        # The preview has no login and can send email: it must not be reachable from the network.
        raise click.ClickException(
            f"--host {asked}: refused, {exc}; the preview only listens on this machine (127.0.0.1, ::1, localhost)"
        ) from None
    port = port if port is not None else (config_port if config_port is not None else DEFAULT_PORT)

    def announce(url: str) -> None:
        click.echo(url)
        click.echo(f"Previewing {previewer.root} · watching stories, templates and newsletter.toml · Ctrl+C stops")

    serve(previewer, bind_host, port, announce=announce, log=lambda line: click.echo(line, err=True))
