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
