"""The Call-ID of the message being handled lands on every log record."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator

import pytest

from trunkline import logcontext


@pytest.fixture
def installed() -> Iterator[None]:
    logcontext.install()
    logcontext.install()  # idempotent
    try:
        yield
    finally:
        logcontext.uninstall()


def _capture(name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("[%(call_id)s] %(message)s"))
    handler.addFilter(logcontext.CallIdFilter())
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_the_filter_stamps_the_current_call_id() -> None:
    logger, stream = _capture("test.logcontext.filter")
    logger.info("outside")
    with logcontext.bound("a84b4c76e66710"):
        logger.info("inside")
        with logcontext.bound(None):  # a message without Call-ID
            logger.info("none")
    logger.info("after")
    assert stream.getvalue().splitlines() == [
        "[-] outside",
        "[a84b4c76e66710] inside",
        "[-] none",
        "[-] after",
    ]


def test_install_stamps_records_of_any_logger(installed: None) -> None:
    token = logcontext.call_id.set("abc@host")
    try:
        record = logging.getLogger("some.library").makeRecord(
            "some.library", logging.INFO, __file__, 1, "hello", (), None
        )
    finally:
        logcontext.call_id.reset(token)
    assert record.__dict__["call_id"] == "abc@host"


async def test_tasks_started_while_handling_a_message_keep_its_call_id() -> None:
    logger, stream = _capture("test.logcontext.tasks")

    async def later(tag: str) -> None:
        await asyncio.sleep(0.01)
        logger.info(tag)

    async def handle(call_id: str) -> asyncio.Task[None]:
        logcontext.call_id.set(call_id)  # what the endpoint does on dispatch
        return asyncio.ensure_future(later(call_id))

    # Each handler runs in its own task (context copied), like the endpoint's dispatch.
    tasks = [await asyncio.create_task(handle(cid)) for cid in ("one", "two")]
    await asyncio.gather(*tasks)
    assert sorted(stream.getvalue().splitlines()) == ["[one] one", "[two] two"]
    assert logcontext.call_id.get() == "-"


def test_a_crafted_call_id_stays_one_token() -> None:
    logger, stream = _capture("test.logcontext.crafted")
    with logcontext.bound("x]: AUTH_FAILED src=192.0.2.1 user=\nroot"):
        logger.info("hello")
    assert stream.getvalue() == "[x]:\\x20AUTH_FAILED\\x20src=192.0.2.1\\x20user=\\nroot] hello\n"
