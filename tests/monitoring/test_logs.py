"""Structured logs: JSON lines with the request and decision ids, and nothing personal."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from relevo.api.app import create_app
from relevo.config import Settings
from relevo.monitoring.logs import (
    DECISION_ID,
    REQUEST_ID,
    ContextFilter,
    JsonFormatter,
    check_level,
    configure,
)

PLACEMENTS = {"placements": [{"id": "log_recs", "k": 2, "default_items": ["boo-001"]}]}


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """JSON lines of what `relevo.*` logs at debug level, during the test."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("relevo")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_decision_logs_its_request_and_decision_ids(
    tmp_path: Path, captured: io.StringIO
) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path, demo_catalog=True))) as client:
        client.put("/v1/placements", json=PLACEMENTS)
        response = client.post(
            "/v1/decide",
            json={"user_id": "secret-person@example.com", "placement": "log_recs"},
            headers={"X-Request-Id": "req-42"},
        )
    decision_id = response.json()["decision_id"]
    decided = [line for line in lines(captured) if str(line["message"]).startswith("decided")]
    assert len(decided) == 1
    assert decided[0]["request_id"] == "req-42"
    assert decided[0]["decision_id"] == decision_id
    assert decided[0]["logger"] == "relevo.engine"
    assert {"time", "level", "message"} <= set(decided[0])
    # ids only: the user never appears in any line
    assert "secret-person" not in captured.getvalue()


def test_exceptions_and_text_format_carry_the_ids() -> None:
    record = logging.LogRecord("relevo.x", logging.ERROR, __file__, 1, "failed %s", ("d",), None)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    tokens = REQUEST_ID.set("r-1"), DECISION_ID.set("d-1")
    try:
        body = json.loads(JsonFormatter().format(record))
        text = logging.LogRecord("relevo.x", logging.INFO, __file__, 1, "hello", None, None)
        ContextFilter().filter(text)
    finally:
        REQUEST_ID.reset(tokens[0])
        DECISION_ID.reset(tokens[1])
    assert body["message"] == "failed d"
    assert "RuntimeError: boom" in body["exception"]
    assert (body["request_id"], body["decision_id"]) == ("r-1", "d-1")
    assert text.getMessage() == "hello [request_id=r-1 decision_id=d-1]"


def test_configure_sets_one_handler_and_checks_the_level() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure("WARNING", "json")
        assert len(root.handlers) == 1
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
        assert root.level == logging.WARNING
        assert logging.getLogger("uvicorn.error").propagate
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    assert check_level(" Debug ") == "debug"
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        check_level("loud")
