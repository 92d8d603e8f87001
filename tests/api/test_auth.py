"""Keys, roles and rate limits: 401 without a key, 403 with the wrong role, 429 over the limit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from relevo.api.app import create_app
from relevo.api.direct import DirectRoute
from relevo.api.security import WRITE as WRITE_ACCESS
from relevo.api.security import api_routes, declared_access, default_deny
from relevo.auth import KeyRing, Role
from relevo.clock import ManualClock
from tests.api.conftest import make_settings
from tests.conftest import BACKENDS

WRITE = {"Authorization": "Bearer w-new"}
OLD_WRITE = {"Authorization": "Bearer w-old"}
ADMIN = {"Authorization": "Bearer a-1"}
EVENT = {"type": "view", "user_id": "auth-user", "item_id": "sho-001"}
HERO = {"variants": [{"id": "A"}], "default": "A"}


@pytest.fixture(scope="module", params=BACKENDS)
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    settings = make_settings(
        request.param,
        tmp_path_factory.mktemp("data"),
        request,
        write_key="w-old, w-new",
        admin_key="a-1",
        rate_limit=0,
        demo_catalog=True,
    )
    with TestClient(create_app(settings)) as client:
        yield client


# (method, path, body, the role it needs; None = public)
ROUTES: list[tuple[str, str, object, Role | None]] = [
    ("POST", "/v1/events", EVENT, Role.WRITE),
    ("GET", "/v1/items", None, Role.WRITE),
    ("GET", "/v1/items/sho-001", None, Role.WRITE),
    ("POST", "/v1/items", {"item_id": "x-1", "title": "x"}, Role.ADMIN),
    ("DELETE", "/v1/items/x-2", None, Role.ADMIN),
    ("POST", "/v1/items/remove", {"item_ids": ["x-3"]}, Role.ADMIN),
    ("PUT", "/v1/users/auth-user/consent", {"analytics": True}, Role.WRITE),
    ("GET", "/v1/users/auth-user", None, Role.ADMIN),
    ("GET", "/v1/events/recent", None, Role.ADMIN),
    ("GET", "/v1/stats", None, Role.ADMIN),
    ("GET", "/healthz", None, None),
    ("GET", "/v1/rules", None, Role.ADMIN),
    ("PUT", "/v1/rules", {"rules": []}, Role.ADMIN),
    ("POST", "/v1/rules/test", {"user_id": "auth-user"}, Role.ADMIN),
    ("GET", "/v1/actions", None, Role.ADMIN),
    ("PUT", "/v1/placements", {"placements": []}, Role.ADMIN),
    ("GET", "/v1/experiments", None, Role.ADMIN),
    ("GET", "/v1/flags?user_id=auth-user", None, Role.WRITE),
    ("PUT", "/v1/flags", {"flags": []}, Role.ADMIN),
    ("GET", "/v1/recommendations?user_id=auth-user", None, Role.WRITE),
    ("GET", "/v1/models", None, Role.ADMIN),
    ("POST", "/v1/decide", {"user_id": "auth-user", "placement": "auth_hero"}, Role.WRITE),
]


@pytest.mark.parametrize(("method", "path", "body", "role"), ROUTES, ids=[r[1] for r in ROUTES])
def test_each_route_needs_its_role(
    client: TestClient, method: str, path: str, body: object, role: Role | None
) -> None:
    client.post("/v1/events", json=EVENT, headers=WRITE)  # so the profile exists
    client.put("/v1/placements/auth_hero", json=HERO, headers=ADMIN)
    none = client.request(method, path, json=body)
    write = client.request(method, path, json=body, headers=WRITE)
    admin = client.request(method, path, json=body, headers=ADMIN)
    assert admin.status_code == 200, admin.text
    if role is None:
        assert none.status_code == write.status_code == 200
        return
    assert none.status_code == 401
    assert none.headers["www-authenticate"] == "Bearer"
    assert none.json()["error"]["code"] == "unauthorized"
    if role is Role.WRITE:
        assert write.status_code == 200
    else:
        assert write.status_code == 403
        assert write.json()["error"] == {
            "code": "forbidden",
            "message": "this needs an admin key; a write key was sent",
        }


def test_an_unknown_key_is_401_and_every_listed_key_works(client: TestClient) -> None:
    assert (
        client.post("/v1/events", json=EVENT, headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    assert (
        client.post("/v1/events", json=EVENT, headers={"Authorization": "w-new"}).status_code == 401
    )
    assert (
        client.post("/v1/events", json=EVENT, headers={"Authorization": "Basic w-new"}).status_code
        == 401
    )
    assert client.post("/v1/events", json=EVENT, headers=OLD_WRITE).status_code == 200


def test_a_write_key_cannot_change_the_catalog(client: TestClient) -> None:
    response = client.post("/v1/items", json={"item_id": "evil", "title": "x"}, headers=WRITE)
    assert response.status_code == 403
    assert client.get("/v1/items/evil", headers=ADMIN).status_code == 404


def test_every_route_declares_its_access(client: TestClient) -> None:
    routes = api_routes(client.app.routes)  # type: ignore[attr-defined]
    assert len(routes) >= 20
    undeclared = [
        f"{sorted(route.methods)} {route.path}"
        for route in routes
        if len(declared_access(route)) != 1
    ]
    assert undeclared == [], "declare PUBLIC, WRITE or ADMIN on these routers"


def test_a_route_that_declares_nothing_is_admin_only(tmp_path: Path) -> None:
    app = create_app(make_settings("embedded", tmp_path, None, write_key="w", admin_key="a"))  # type: ignore[arg-type]
    forgotten = APIRouter()

    @forgotten.get("/v1/forgotten")
    async def handler() -> dict[str, bool]:
        return {"ok": True}

    app.include_router(forgotten)
    with TestClient(app) as client:
        assert client.get("/v1/forgotten").status_code == 401
        assert client.get("/v1/forgotten", headers={"Authorization": "Bearer w"}).status_code == 403
        assert client.get("/v1/forgotten", headers={"Authorization": "Bearer a"}).status_code == 200


@pytest.mark.parametrize("backend", BACKENDS)
def test_over_the_rate_limit_is_429_with_retry_after(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    clock = ManualClock(1_767_225_600_000)
    settings = make_settings(
        backend, tmp_path, request, write_key="w", admin_key="a", rate_limit=1, rate_burst=2
    )
    with TestClient(create_app(settings, clock)) as client:
        key = {"Authorization": "Bearer w"}
        assert [client.get("/v1/items", headers=key).status_code for _ in range(2)] == [200, 200]
        limited = client.get("/v1/items", headers=key)
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "1"
        assert limited.json()["error"]["code"] == "rate_limited"
        # another key has its own bucket
        assert client.get("/v1/items", headers={"Authorization": "Bearer a"}).status_code == 200
        clock.advance(1000)
        assert client.get("/v1/items", headers=key).status_code == 200
        assert client.get("/v1/items", headers=key).status_code == 429


def test_the_key_ring_compares_every_key() -> None:
    ring = KeyRing(" w1 ,w2,", "a1")
    assert ring.enabled
    assert ring.authenticate("w1").role is Role.WRITE
    assert ring.authenticate("a1").key_id != ring.authenticate("w2").key_id
    assert not KeyRing().enabled
    assert KeyRing().authenticate(None).role is Role.ADMIN


def test_a_write_key_may_ride_in_the_query_for_beacons(client: TestClient) -> None:
    assert client.post("/v1/events?key=w-new", json=EVENT).status_code == 200
    assert client.post("/v1/events?key=nope", json=EVENT).status_code == 401
    admin_in_url = client.get("/v1/stats?key=a-1")
    assert admin_in_url.status_code == 401
    assert "Authorization header" in admin_in_url.json()["error"]["message"]
    assert client.get("/v1/stats?key=w-new").status_code == 403


def test_direct_routes_check_access_as_the_dependency_does(client: TestClient) -> None:
    """`POST /v1/decide` and `POST /v1/events` are served without FastAPI's dependencies
    (`DirectRoute`): their access is checked by the same code, and only their declared
    access and the app's `default_deny` are given to them (no other would run)."""
    decide = {"user_id": "auth-user", "placement": "auth_hero"}
    client.put("/v1/placements/auth_hero", json=HERO, headers=ADMIN)
    basic = client.post("/v1/decide", json=decide, headers={"Authorization": "Basic w-new"})
    assert basic.status_code == 401
    assert "Bearer" in basic.json()["error"]["message"]
    assert client.post("/v1/decide?key=w-new", json=decide).status_code == 200  # a beacon
    assert client.post("/v1/decide?key=a-1", json=decide).status_code == 401
    routes = api_routes(client.app.routes)  # type: ignore[attr-defined]
    direct = [r for r in routes if isinstance(getattr(r, "original_route", r), DirectRoute)]
    assert sorted((r.path, sorted(r.methods)) for r in direct) == [
        ("/v1/decide", ["POST"]),
        ("/v1/events", ["POST"]),
    ]
    for route in direct:
        given = {d.dependency for d in route.dependencies}
        assert given <= {WRITE_ACCESS.dependency, default_deny}, route.path


def test_a_direct_route_takes_the_request_alone_and_declares_access() -> None:
    router = APIRouter(dependencies=[WRITE_ACCESS])

    async def with_a_parameter(request: Request, user_id: str) -> JSONResponse:
        return JSONResponse({})

    with pytest.raises(TypeError, match="request alone"):
        router.add_api_route("/x", with_a_parameter, route_class_override=DirectRoute)

    async def fine(request: Request) -> JSONResponse:
        return JSONResponse({})

    with pytest.raises(TypeError, match="must declare"):
        APIRouter().add_api_route("/y", fine, route_class_override=DirectRoute)
