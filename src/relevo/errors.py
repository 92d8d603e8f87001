"""The error hierarchy.

Library code raises these; the HTTP layer maps them to statuses in one place
(`relevo.api.errors`) and the CLI prints their message without a traceback.
Every error carries a machine-readable `code`, a human `message` and, where one
input is to blame, the `field` that names it (``events[3].timestamp``).
"""

from __future__ import annotations

from typing import Any


class RelevoError(Exception):
    """Base of every error relevo raises on purpose."""

    status = 500
    code = "internal"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details: list[dict[str, Any]] | None = None
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, Any]:
        """The body of an error response: ``{"code", "message", "field"?, "details"?}``."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.details is not None:
            body["details"] = self.details
        return body


class InvalidInput(RelevoError):
    """The caller sent something that can't be accepted; nothing was changed."""

    status = 422
    code = "invalid"


class NotFound(RelevoError):
    status = 404
    code = "not_found"


class PayloadTooLarge(RelevoError):
    status = 413
    code = "payload_too_large"


class Unavailable(RelevoError):
    """A dependency (store, log) can't be reached; the caller may retry later."""

    status = 503
    code = "unavailable"


class ConfigurationError(RelevoError):
    """Settings or the project file are wrong; raised at start, never per request."""

    code = "configuration"


class MissingDependency(ConfigurationError):
    """An optional dependency is not installed; the message names the extra to install."""

    code = "missing_dependency"


class Unauthorized(RelevoError):
    """No API key, or one that is not configured (HTTP 401)."""

    status = 401
    code = "unauthorized"


class Forbidden(RelevoError):
    """A valid key whose role does not allow this (HTTP 403)."""

    status = 403
    code = "forbidden"


class RateLimited(RelevoError):
    """The key spent its request budget; `retry_after_ms` says when a token is back (HTTP 429)."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_ms: int) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


class Overloaded(Unavailable):
    """Too much work is waiting: the caller should retry after a short pause (503)."""

    code = "overloaded"
