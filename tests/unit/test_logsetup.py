"""``[logging]`` applied: level, text or JSON lines with the Call-ID, a log file."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from trunkline import logcontext
from trunkline.logsetup import configure_logging


@pytest.fixture
def restore() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    try:
        yield
    finally:
        handler = configure_logging(stream=io.StringIO())  # replace ours, then drop it
        root.removeHandler(handler)
        handler.close()
        root.setLevel(level)
        logcontext.uninstall()


def test_text_lines_carry_the_call_id(restore: None) -> None:
    stream = io.StringIO()
    configure_logging("info", "text", stream=stream)
    log = logging.getLogger("trunkline.test")
    with logcontext.bound("c-1@example.com"):
        log.info("forwarded %s", "INVITE")
    log.debug("not at info level")
    line = stream.getvalue().strip()
    assert line.endswith("INFO trunkline.test [c-1@example.com]: forwarded INVITE")
    assert "\n" not in line


def test_json_lines(restore: None) -> None:
    stream = io.StringIO()
    configure_logging("debug", "json", stream=stream)
    log = logging.getLogger("trunkline.test")
    log.debug("quiet")
    try:
        raise ValueError("boom")
    except ValueError:
        with logcontext.bound("c-2"):
            log.exception("failed")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "DEBUG" and first["call_id"] == "-" and first["message"] == "quiet"
    assert first["time"].endswith("Z") and isinstance(first["pid"], int)
    assert second["call_id"] == "c-2" and "ValueError: boom" in second["exception"]


def test_a_log_file_and_reconfiguring(restore: None, tmp_path: Path) -> None:
    path = tmp_path / "logs" / "trunkline.log"
    configure_logging("warning", "text", path)
    log = logging.getLogger("trunkline.test")
    log.info("not written")
    log.warning("banned 192.0.2.7")
    stream = io.StringIO()
    configure_logging("info", "text", stream=stream)  # the file handler is replaced
    log.info("to the stream")
    assert path.read_text().count("\n") == 1 and "banned 192.0.2.7" in path.read_text()
    assert "to the stream" in stream.getvalue()
