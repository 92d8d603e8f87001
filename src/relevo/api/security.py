"""Access to routes: every route declares `PUBLIC`, `WRITE` or `ADMIN` access.

Routers put the requirement on themselves (``APIRouter(dependencies=[WRITE])``) so a
new router has to choose. A route that chose nothing is **admin-only**: the app-level
`default_deny` dependency checks for a declaration and, finding none, demands an admin
key (and `tests/api/test_auth.py` fails, naming the route, until it chooses).

A request is authenticated (401 without a valid key), authorized (403 when the key's
role is not enough), then rate-limited per key (429 with ``Retry-After``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from relevo.api.responses import ErrorBody
from relevo.auth import KeyRing, Principal, Role, authorize
from relevo.errors import Unauthorized
from relevo.ratelimit import RateLimiter

_bearer = HTTPBearer(
    auto_error=False,
    description="An API key: `Authorization: Bearer <key>`. Write keys (`RELEVO_WRITE_KEY`) "
    "send events and consent and read the catalog; admin keys (`RELEVO_ADMIN_KEY`) do "
    "everything.",
)

Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]


async def _check(
    request: Request, credentials: HTTPAuthorizationCredentials | None, role: Role
) -> Principal:
    keys: KeyRing = request.app.state.keys
    if credentials is None and keys.enabled and request.headers.get("authorization"):
        raise Unauthorized("send the key as 'Authorization: Bearer <key>'")
    if credentials is None and "key" in request.query_params:
        return await _check_query_key(request, keys, role)
    principal = keys.authenticate(None if credentials is None else credentials.credentials)
    authorize(principal, role)
    limiter: RateLimiter = request.app.state.limiter
    await limiter.check(principal)
    return principal


async def _check_query_key(request: Request, keys: KeyRing, role: Role) -> Principal:
    """A key in ``?key=``: for `navigator.sendBeacon`, which cannot set headers.

    Only write keys are accepted there: URLs end up in logs and browser history, which
    is harmless for a key that is public anyway and never acceptable for an admin key.
    """
    principal = keys.authenticate(request.query_params["key"])
    if principal.role is not Role.WRITE and keys.enabled:
        raise Unauthorized("admin keys are accepted only in the Authorization header")
    authorize(principal, role)
    limiter: RateLimiter = request.app.state.limiter
    await limiter.check(principal)
    return principal


async def write_access(request: Request, credentials: Credentials) -> Principal:
    """A write or an admin key."""
    return await _check(request, credentials, Role.WRITE)


async def admin_access(request: Request, credentials: Credentials) -> Principal:
    """An admin key."""
    return await _check(request, credentials, Role.ADMIN)


async def public_access() -> None:
    """No key needed (health checks, the SDK file)."""


PUBLIC = Depends(public_access)
WRITE = Depends(write_access)
ADMIN = Depends(admin_access)
_ROLES: dict[Any, Role | None] = {
    public_access: None,
    write_access: Role.WRITE,
    admin_access: Role.ADMIN,
}


def declared_access(route: Any) -> set[Any]:
    """The access dependencies a route declares (exactly one is expected)."""
    return {d.dependency for d in route.dependencies if d.dependency in _ROLES}


def declared_role(route: Any) -> Role | None:
    """The role a route's declared access demands (None: public); TypeError unless it
    declares exactly one."""
    declared = declared_access(route)
    if len(declared) != 1:
        raise TypeError(f"{route.path} must declare one of PUBLIC, WRITE or ADMIN")
    return _ROLES[declared.pop()]


async def check_access(request: Request, role: Role) -> Principal:
    """What `write_access` or `admin_access` checks, for a route that is not given the
    header by FastAPI (`default_deny`, `relevo.api.direct.DirectRoute`)."""
    return await _check(request, await _bearer(request), role)


def api_routes(routes: list[Any]) -> list[Any]:
    """Every API route of an app, with the dependencies its routers gave it.

    FastAPI wraps an included router (its routes are not listed one by one in
    `app.routes`); its effective route contexts carry the merged dependencies.
    """
    found: list[Any] = []
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            found.extend(contexts())
        elif isinstance(route, APIRoute):
            found.append(route)
    return found


async def default_deny(request: Request) -> None:
    """App-wide: a route that declared no access is treated as admin-only.

    It reads the header itself (not through `Security`), so that routes which did
    declare their access don't all show a bearer requirement in the OpenAPI schema.
    """
    route = request.scope.get("route")
    if isinstance(route, APIRoute) and not declared_access(route):
        await check_access(request, Role.ADMIN)


_ERROR = {"model": ErrorBody}
RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {**_ERROR, "description": "No API key, or an unknown one"},
    403: {**_ERROR, "description": "The key's role does not allow this"},
    429: {**_ERROR, "description": "Rate limit of the key reached; see `Retry-After`"},
}
