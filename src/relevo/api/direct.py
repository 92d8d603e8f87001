"""`DirectRoute`: a hot route served without FastAPI's dependency solving.

`POST /v1/decide` is most of an API process's traffic. Through FastAPI, each request
solved a tree of dependencies (the app's `default_deny`, the router's access check, the
bearer header under it, the engine) before the endpoint ran: what the app adds around the
engine was 936 k instructions a decision and 979 k an event, 498 k and 534 k through
this route (`python -m bench.app_cpu --callgrind`: a decision 5.15 M → 4.71 M; about 0.1
ms of CPU; docs/performance.md, "FastAPI around a decision").

A direct route's endpoint takes the request alone. The access its router declares
(`PUBLIC`, `WRITE` or `ADMIN`) is checked here by the code the dependency runs
(`security.check_access`), so answers and errors are the same. It is otherwise a FastAPI
route: matched, documented in the OpenAPI schema (from its signature and declared
dependencies) and its errors handled like any other.

What it does not run: dependencies given where its router is included (the app gives only
`default_deny`, which a route with declared access passes anyway; a test checks that no
other reaches a direct route), and parameters other than the request (refused when the
route is made).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from relevo.api.security import check_access, declared_role


class DirectRoute(APIRoute):
    """Give it to a route as ``route_class_override`` (see the module's docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint
        parameters = list(inspect.signature(endpoint).parameters.values())
        if len(parameters) != 1 or parameters[0].annotation not in (Request, "Request"):
            raise TypeError(f"a direct route's endpoint takes the request alone: {self.path}")
        role = declared_role(self)

        async def handler(request: Request) -> Response:
            if role is not None:
                await check_access(request, role)
            response: Response = await endpoint(request)
            return response

        return handler
