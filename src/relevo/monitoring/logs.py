"""Structured logs: one JSON object per line, carrying the request and decision ids.

Why JSON: log pipelines (Loki, Elasticsearch, Cloud Logging) index fields, so an
operator can follow one request (``request_id``) or one decision (``decision_id``)
across processes without parsing prose. The ids travel in context variables: the
HTTP middleware sets the request id, the decision pipeline's caller the decision id,
and every record logged meanwhile carries them, whatever module logged it.

Personal data stays out: a record holds the message, the logger, the level, the
time and ids. Messages themselves name users and events by id only (relevo never
logs event contents, profiles or keys).

>>> import io, json
>>> stream = io.StringIO()
>>> handler = logging.StreamHandler(stream)
>>> handler.setFormatter(JsonFormatter())
>>> logger = logging.getLogger("relevo.doctest")
>>> logger.addHandler(handler); logger.propagate = False
>>> token = REQUEST_ID.set("r-1")
>>> logger.warning("decision %s not recorded", "d-9")
>>> REQUEST_ID.reset(token)
>>> line = json.loads(stream.getvalue())
>>> line["message"], line["level"], line["request_id"]
('decision d-9 not recorded', 'warning', 'r-1')
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

REQUEST_ID: ContextVar[str | None] = ContextVar("relevo_request_id", default=None)
DECISION_ID: ContextVar[str | None] = ContextVar("relevo_decision_id", default=None)

LogFormat = Literal["json", "text"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LEVELS = ("debug", "info", "warning", "error", "critical")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: time, level, logger, message, ids, exception."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            body["request_id"] = request_id
        decision_id = DECISION_ID.get()
        if decision_id is not None:
            body["decision_id"] = decision_id
        for name in ("route", "status", "duration_ms", "method"):
            value = record.__dict__.get(name)
            if value is not None:
                body[name] = value
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(body).decode()


class ContextFilter(logging.Filter):
    """Adds the ids to text records too (``request_id=...`` after the message)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = [
            f"{name}={value}"
            for name, value in (
                ("request_id", REQUEST_ID.get()),
                ("decision_id", DECISION_ID.get()),
            )
            if value is not None
        ]
        if ids and isinstance(record.msg, str) and not getattr(record, "_relevo_ids", False):
            record.msg = f"{record.msg} [{' '.join(ids)}]"
            record._relevo_ids = True
        return True


def check_level(level: str) -> str:
    """The level, lower case; ValueError naming the choices when unknown."""
    found = level.strip().lower()
    if found not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; one of {', '.join(LEVELS)}")
    return found


def configure(level: str, log_format: LogFormat) -> None:
    """Send every log record (relevo's, uvicorn's, libraries') to stderr in one format.

    Uvicorn must then be started with ``log_config=None`` so it keeps this setup
    instead of installing its own handlers.
    """
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
        handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(check_level(level).upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
