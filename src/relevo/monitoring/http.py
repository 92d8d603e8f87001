"""HTTP middleware: latency per route template, request ids, and their log context.

A pure ASGI middleware (not Starlette's `BaseHTTPMiddleware`, which copies the
body and costs a task per request). It:

- takes the caller's ``X-Request-Id`` (when it is a short token) or makes one, puts
  it in the log context for everything that request logs, and echoes it back;
- times the request and counts it under the *route template* the router matched
  (``/v1/users/{user_id}``): raw paths would make one time series per user.
  Requests no route matched are counted under ``unmatched``.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relevo.monitoring import metrics
from relevo.monitoring.logs import REQUEST_ID

HEADER = b"x-request-id"
_VALID_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")
UNMATCHED = "unmatched"


def new_request_id() -> str:
    return os.urandom(8).hex()


def route_template(scope: Scope) -> str:
    """The path template of the route that handled the request, or ``unmatched``."""
    route: Any = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class RequestMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(HEADER)
        request_id = (
            given.decode() if given is not None and _VALID_ID.match(given) else new_request_id()
        )
        token = REQUEST_ID.set(request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (HEADER, request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            method = scope.get("method", "GET")
            metrics.child(metrics.HTTP_DURATION, method, route).observe(elapsed)
            metrics.child(metrics.HTTP_REQUESTS, method, route, str(status)).inc()
            REQUEST_ID.reset(token)
