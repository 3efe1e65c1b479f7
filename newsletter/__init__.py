"""newsletter: a daily newsletter email generator.

Stories (Markdown + YAML front matter) → an edition (window, order, sections, lead) → responsive HTML
(Jinja + MJML, CSS inlined) and a plain-text part → a MIME message → the outbox or an SMTP server.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
