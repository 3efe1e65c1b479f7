"""Story intake: RSS / Atom / JSON feeds and article pages → clean story files under `stories/`.

In:  feed and page URLs (or files), the `[intake]` settings.
Out: story files under `stories/` (read by the edition pipeline like any other), a report per source.

    fetch.py     bytes from a URL (httpx: timeouts, size cap, conditional GET) or a file
    feeds.py     feed document → items (feedparser; JSON Feed)
    pages.py     article page → one item (trafilatura)
    metadata.py  what a page states about itself: instant, section, tags, title, url, summary, image
    clean.py     only the article: clutter removed before and after extraction
    encoding.py  mis-declared charsets recognised; mojibake refused
    convert.py   HTML → sanitized Markdown (no tracking pixels); plain one-line texts; dates
    writer.py    item → story file; the state in data/intake.sqlite
    importer.py  runs over sources, one report
    options.py   `[intake]` read once into IntakeOptions (the feeds, fetch limits)

`import_configured(settings)` imports the `[[intake.feeds]]` of newsletter.toml (the morning job calls
it before the build); `import_feed` and `import_page` import one source.

Public face: the names in `__all__`.
"""

from __future__ import annotations

from .convert import parse_datetime
from .importer import Action, ImportReport, import_configured, import_feed, import_page
from .options import INTAKE, FeedSource, IntakeOptions, intake_options

__all__ = [
    "INTAKE",
    "Action",
    "FeedSource",
    "ImportReport",
    "IntakeOptions",
    "import_configured",
    "import_feed",
    "import_page",
    "intake_options",
    "parse_datetime",
]
