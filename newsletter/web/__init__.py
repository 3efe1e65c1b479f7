"""What a browser talks to.

In:  the settings and the edition pipeline; the delivery subsystem for unsubscribes and test sends.
Out: HTTP pages.

    preview/   `newsletter preview`: the editors' local preview (loopback only), live reload, send test

Public face: the names in `__all__`.
"""

from __future__ import annotations

from .preview.security import loopback_host
from .preview.server import serve
from .preview.state import Previewer

__all__ = ["Previewer", "loopback_host", "serve"]
