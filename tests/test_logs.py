"""The log line formats in-process: JSON records with nested context, addresses masked above debug only,
tracebacks kept (and masked) in the JSON object."""

from __future__ import annotations

import io
import json
import logging

from newsletter import logs


def _logger(stream: io.StringIO, fmt: str) -> logging.Logger:
    handler = logs.handler(fmt)
    handler.setStream(stream)  # type: ignore[attr-defined]
    logger = logging.getLogger(f"newsletter.test-logs.{fmt}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger


def test_json_lines_carry_nested_context_and_mask_addresses_above_debug() -> None:
    stream = io.StringIO()
    log = _logger(stream, "json")
    with logs.context(edition="2016-12-30", run_id="r1"):
        with logs.context(language="fr"):
            log.warning("not delivered: %s", "ann.reader@example.org: 550 5.1.1 no such user")
        log.debug("tracing %s", "ann.reader@example.org")
    log.info("outside")
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "warning" and first["logger"] == "newsletter.test-logs.json"
    assert first["message"] == "not delivered: …@example.org: 550 5.1.1 no such user"
    assert (first["edition"], first["language"], first["run_id"]) == ("2016-12-30", "fr", "r1")
    assert second["message"] == "tracing ann.reader@example.org" and "language" not in second
    assert "edition" not in third and third["time"].endswith("+00:00")


def test_a_traceback_is_one_field_and_masked() -> None:
    stream = io.StringIO()
    log = _logger(stream, "json")
    try:
        raise ValueError("refused: bob@example.net")
    except ValueError:
        log.exception("send failed")
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert "ValueError: refused: …@example.net" in record["exception"] and "bob@" not in line


def test_the_text_format_masks_too() -> None:
    stream = io.StringIO()
    _logger(stream, "text").error("complaint from %s", "carol@example.com")
    assert stream.getvalue().rstrip().endswith("ERROR newsletter.test-logs.text: complaint from …@example.com")
