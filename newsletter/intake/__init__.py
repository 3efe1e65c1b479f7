"""Story intake: RSS / Atom / JSON feeds and article pages → clean story files under `stories/`.

    fetch.py     bytes from a URL (httpx: timeouts, size cap, conditional GET) or a file
    feeds.py     feed document → items (feedparser; JSON Feed)
    pages.py     article page → one item (trafilatura)
    convert.py   HTML → sanitized Markdown; plain one-line texts; dates
    writer.py    item → story file; the state in data/intake.sqlite
    importer.py  runs over sources, one report

`import_configured(settings)` imports the `[[intake.feeds]]` of newsletter.toml (the morning job calls
it before the build); `import_feed` and `import_page` import one source.
"""

from __future__ import annotations

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
]
