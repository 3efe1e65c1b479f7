"""Get the bytes of a feed or page: over HTTP(S) with httpx, or from a local file.

Everything the network can do wrong becomes one `IntakeError` line naming the source: timeouts, a server
that trickles bytes forever (a whole-download deadline, since httpx's timeouts are per read), redirect
loops, answers over the size cap (checked on the decoded bytes, so a compressed bomb is caught too),
HTTP errors and content types that cannot be a feed or a page. Conditional GET: the caller passes the
ETag / Last-Modified it remembered and gets `not_modified` back instead of the body.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

import httpx

from .. import __version__
from ..errors import IntakeError

Kind = Literal["feed", "page"]

DEFAULT_TIMEOUT = 20.0  # seconds the server may keep us waiting (connect, or between two reads)
DEFAULT_MAX_BYTES = 10_000_000
MAX_REDIRECTS = 5
# The whole download may take this many times the timeout: long enough for a big page on a slow line,
# short enough that a server dripping one byte a second cannot hold the morning run.
DEADLINE_FACTOR = 4

_ACCEPT = {
    "feed": "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, "
    "text/xml;q=0.9, application/json;q=0.8, */*;q=0.1",
    "page": "text/html, application/xhtml+xml;q=0.9, */*;q=0.1",
}
# Media types a feed is served as in the wild (text/plain and octet-stream from misconfigured servers:
# the parser decides). HTML is refused with a hint: it is usually the site's home page.
_FEED_TYPES = {
    "application/rss+xml",
    "application/atom+xml",
    "application/rdf+xml",
    "application/x-rss+xml",
    "application/x-atom+xml",
    "application/xml",
    "text/xml",
    "application/feed+json",
    "application/json",
    "text/plain",
    "application/octet-stream",
    "",
}
_PAGE_TYPES = {"text/html", "application/xhtml+xml", "application/octet-stream", ""}


@dataclass(frozen=True)
class Fetched:
    """One answer. `content` is None when the server said 304 Not Modified."""

    source: str  # as the user wrote it, for messages
    url: str | None  # final URL after redirects; None for a local file
    content: bytes | None
    media_type: str = ""  # lower case, without parameters; "" when unknown
    charset: str | None = None
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.content is None


def is_url(source: str) -> bool:
    return urlsplit(source).scheme.lower() in ("http", "https")


def user_agent(base_url: str) -> str:
    return f"newsletter-intake/{__version__} (+{base_url})"


def read_file(path: Path, *, source: str, max_bytes: int = DEFAULT_MAX_BYTES) -> Fetched:
    """A saved feed or page. Read at most `max_bytes` + 1 bytes, so an enormous file is refused cheaply."""
    try:
        with path.open("rb") as fh:
            content = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise IntakeError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise IntakeError(f"{source}: is a folder, not a file") from None
    except OSError as exc:
        raise IntakeError(f"{source}: cannot read ({exc.strerror})") from None
    if len(content) > max_bytes:
        raise IntakeError(f"{source}: larger than the {_mb(max_bytes)} limit")
    return Fetched(source=source, url=None, content=content)


def file_path(source: str, relative_to: Path | None = None) -> Path:
    """The local path a non-URL source names (`file://` URLs included)."""
    parts = urlsplit(source)
    path = Path(unquote(parts.path)) if parts.scheme.lower() == "file" else Path(source).expanduser()
    if relative_to is not None and not path.is_absolute():
        path = relative_to / path
    return path


class Fetcher:
    """An HTTP client with the limits of the intake stage. Use as a context manager."""

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        agent: str = user_agent("https://newsletter.example.org"),
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            headers={"User-Agent": agent},
            transport=transport,
            # Feeds are public documents: no cookies carried between sources, no proxy surprises from
            # the environment of a cron job.
            trust_env=False,
        )

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def get(self, url: str, kind: Kind, *, etag: str | None = None, last_modified: str | None = None) -> Fetched:
        headers = {"Accept": _ACCEPT[kind]}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        deadline = time.monotonic() + self.timeout * DEADLINE_FACTOR
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                if response.status_code == 304:
                    return Fetched(
                        source=url,
                        url=str(response.url),
                        content=None,
                        etag=response.headers.get("etag") or etag,
                        last_modified=response.headers.get("last-modified") or last_modified,
                    )
                if response.status_code >= 400:
                    raise IntakeError(f"{url}: HTTP {response.status_code} {response.reason_phrase}".rstrip())
                if response.status_code != 200:
                    raise IntakeError(f"{url}: unexpected HTTP {response.status_code} {response.reason_phrase}")
                media_type, charset = _content_type(response.headers.get("content-type", ""))
                _check_type(url, kind, media_type)
                length = response.headers.get("content-length", "")
                if length.isdigit() and int(length) > self.max_bytes:
                    raise IntakeError(f"{url}: {_mb(int(length))} is larger than the {_mb(self.max_bytes)} limit")
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise IntakeError(f"{url}: larger than the {_mb(self.max_bytes)} limit; download stopped")
                    if time.monotonic() > deadline:
                        raise IntakeError(
                            f"{url}: download took longer than {self.timeout * DEADLINE_FACTOR:g} s; stopped"
                        )
                    chunks.append(chunk)
                return Fetched(
                    source=url,
                    url=str(response.url),
                    content=b"".join(chunks),
                    media_type=media_type,
                    charset=charset,
                    etag=response.headers.get("etag"),
                    last_modified=response.headers.get("last-modified"),
                )
        except httpx.TooManyRedirects:
            raise IntakeError(f"{url}: too many redirects (more than {MAX_REDIRECTS})") from None
        except httpx.ConnectTimeout:
            raise IntakeError(f"{url}: no connection within {self.timeout:g} s") from None
        except httpx.TimeoutException:
            raise IntakeError(f"{url}: the server sent nothing for {self.timeout:g} s") from None
        except httpx.UnsupportedProtocol as exc:
            raise IntakeError(f"{url}: {exc}") from None
        except httpx.DecodingError:
            raise IntakeError(f"{url}: the response could not be decompressed") from None
        except httpx.HTTPError as exc:
            raise IntakeError(f"{url}: {_reason(exc)}") from None


def _content_type(header: str) -> tuple[str, str | None]:
    msg = Message()
    msg["content-type"] = header
    media_type = msg.get_content_type() if header.strip() else ""
    charset = msg.get_param("charset")
    return media_type.lower(), (charset.strip().lower() if isinstance(charset, str) and charset.strip() else None)


def _check_type(url: str, kind: Kind, media_type: str) -> None:
    if kind == "feed" and media_type not in _FEED_TYPES:
        if media_type in ("text/html", "application/xhtml+xml"):
            raise IntakeError(
                f"{url}: is a web page (text/html), not a feed; for one article use `newsletter import page`"
            )
        raise IntakeError(f"{url}: content type {media_type} is not a feed (RSS, Atom or JSON Feed)")
    if kind == "page" and media_type not in _PAGE_TYPES:
        raise IntakeError(f"{url}: content type {media_type} is not an HTML page")


def _reason(exc: httpx.HTTPError) -> str:
    """The innermost cause, in words: 'connection refused' rather than a chain of wrappers."""
    cause: BaseException = exc
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
    text = getattr(cause, "strerror", None) or str(cause) or str(exc) or type(exc).__name__
    return " ".join(str(text).split()).lower().removeprefix("[errno 111] ")


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.3g} MB"
