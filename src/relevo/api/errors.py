"""Errors to HTTP, in one place: `RelevoError` subclasses carry their status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from relevo.api.responses import error_response
from relevo.errors import RateLimited, RelevoError, Unauthorized, Unavailable
from relevo.events import field_path

log = logging.getLogger(__name__)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}


def install(app: FastAPI) -> None:
    @app.exception_handler(RelevoError)
    async def relevo_error(request: Request, error: RelevoError) -> Response:
        headers = _headers(error)
        if error.status >= 500 and not isinstance(error, Unavailable):
            log.error("%s %s failed: %s", request.method, request.url.path, error.message)
        return error_response(error.status, error.to_dict(), headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        first = error.errors()[0]
        loc = tuple(first.get("loc", ()))
        field = field_path(
            loc[1:] if loc and loc[0] in {"query", "path", "body", "header"} else loc
        )
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        return error_response(422, {"code": "invalid", "message": message, "field": field or None})

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        code = _HTTP_CODES.get(error.status_code, "http_error")
        return error_response(
            error.status_code, {"code": code, "message": str(error.detail)}, error.headers
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(
            500, {"code": "internal", "message": "internal error; see the server log"}
        )


def _headers(error: RelevoError) -> dict[str, str] | None:
    if isinstance(error, Unavailable):
        return {"Retry-After": "1"}
    if isinstance(error, RateLimited):
        return {"Retry-After": str(max(1, -(-error.retry_after_ms // 1000)))}
    if isinstance(error, Unauthorized):
        return {"WWW-Authenticate": "Bearer"}
    return None
