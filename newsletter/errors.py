"""The one exception tree of the package.

NewsletterError                 anything the user can fix; the CLI prints str(err) on one line
├── ConfigError                 a bad value in newsletter.toml / NEWSLETTER_* / flags
├── StoryError                  a story file that cannot be read (file + field)
├── EditionError                an edition that cannot be built (empty, over budget)
├── TemplateError               a Jinja or MJML error (template file + line)
├── SubscriberError             a subscriber list that cannot be read
├── DeliveryError               a sink that cannot deliver at all (server unreachable)
│   ├── LockedError             another run holds the edition / scheduler lock
│   └── WriteError              a local file or folder cannot be written (permissions, disk full)
├── StorageError                a record store that cannot be read or written (names the store and its file
│   │                           or database, never a password); sqlite3 and psycopg errors become this
│   └── DamagedStoreError       a records file that is there but not whole: refused, never read as empty
├── TokenError                  a forged or malformed unsubscribe token
└── IntakeError                 a feed or page that cannot be fetched or read (names the source)
"""

from __future__ import annotations


class NewsletterError(Exception):
    """Base class: its message is one line a user can act on."""


class ConfigError(NewsletterError):
    pass


class StoryError(NewsletterError):
    """A problem with one story file; `field` is None when it is about the whole file."""

    def __init__(self, path: str, field: str | None, message: str) -> None:
        self.path = path
        self.field = field
        self.message = message
        where = f"{path}: field '{field}'" if field else path
        super().__init__(f"{where}: {message}")


class EditionError(NewsletterError):
    pass


class NoStories(EditionError):
    """An edition's window holds no story (of its newsletter, of its language): nothing to build."""


class TemplateError(NewsletterError):
    def __init__(self, template: str, line: int | None, message: str) -> None:
        self.template = template
        self.line = line
        where = f"{template}:{line}" if line else template
        super().__init__(f"{where}: {message}")


class SubscriberError(NewsletterError):
    pass


class DeliveryError(NewsletterError):
    pass


class LockedError(DeliveryError):
    pass


class PausedError(DeliveryError):
    """The circuit breaker paused a send (or it is still paused): nothing lost, `send --resume` goes on."""


class WriteError(DeliveryError):
    """A local write failed: not the relay's fault and not transient, so the run stops at once."""


class StorageError(NewsletterError):
    """A record store failed: its message names the store and its file or (redacted) database URL.
    `transient`: the database undid the work for a reason of its own (a deadlock); running it again may do."""

    transient = False


class DamagedStoreError(StorageError):
    """A records file exists but is empty, cut short, not a database or fails its check."""


class TokenError(NewsletterError):
    pass


class IntakeError(NewsletterError):
    pass
