"""Helpers the test modules share: the demo copied into a test's own folder, a story written in one call,
a real SMTP server's parts, placeholder images, what a reader sees of a page. Fixtures stay in conftest.py.
"""

from __future__ import annotations

from .demo import (
    CHROMIUM,
    DEMO_DATE,
    DEMO_STORY,
    IN_CI,
    REPO,
    check_eml_tool,
    copy_demo_config,
    copy_demo_stories,
    demo_story_text,
    make_demo_root,
    write_story,
)
from .images import placeholder_png
from .smtp import SmtpRecord, SmtpServer, StoreHandler, free_port

__all__ = [
    "CHROMIUM",
    "DEMO_DATE",
    "DEMO_STORY",
    "IN_CI",
    "REPO",
    "SmtpRecord",
    "SmtpServer",
    "StoreHandler",
    "check_eml_tool",
    "copy_demo_config",
    "copy_demo_stories",
    "demo_story_text",
    "free_port",
    "make_demo_root",
    "placeholder_png",
    "write_story",
]
