"""Story intake: RSS / Atom / JSON feeds and article pages → clean story files under `stories/`.

In:  feed and page URLs (or files), the `[intake]` settings.
Out: story files under `stories/` (read by the edition pipeline like any other), a report per source.

    fetch.py     bytes from a URL (httpx: timeouts, size cap, conditional GET) or a file
    feeds.py     feed document → items (feedparser; JSON Feed)
    pages.py     article page → one item (trafilatura)
    convert.py   HTML → sanitized Markdown; plain one-line texts; dates
    writer.py    item → story file; the state in data/intake.sqlite
    importer.py  runs over sources, one report

`import_configured(settings)` imports the `[[intake.feeds]]` of newsletter.toml (the morning job calls
it before the build); `import_feed` and `import_page` import one source.

Public face: the names in `__all__`.
"""

from __future__ import annotations

from .convert import parse_datetime
from .importer import (
    Action,
    FeedSource,
    ImportReport,
    IntakeSettings,
    import_configured,
    import_feed,
    import_page,
    intake_settings,
)

__all__ = [
    "Action",
    "FeedSource",
    "ImportReport",
    "IntakeSettings",
    "import_configured",
    "import_feed",
    "import_page",
    "intake_settings",
    "parse_datetime",
]
