"""Malformed bodies and events: a 4xx naming the field, and nothing changes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.api.conftest import Api

OK = {"type": "view", "user_id": "bad-input-user", "item_id": "sho-001"}


def event(**changes: Any) -> dict[str, Any]:
    body = {**OK, **changes}
    return {key: value for key, value in body.items() if value is not None}


# (name, path, raw body, expected status, expected field)
CASES: list[tuple[str, str, bytes, int, str]] = [
    ("not json", "/v1/events", b"{nope", 422, "body"),
    ("empty body", "/v1/events", b"", 422, "body"),
    ("a json array", "/v1/events", b"[]", 422, "body"),
    ("a json number", "/v1/events", b"42", 422, "body"),
    ("a json string", "/v1/events", b'"view"', 422, "body"),
    ("envelope with extra key", "/v1/events", orjson.dumps({"events": [], "meta": 1}), 422, "meta"),
    (
        "events is not a list",
        "/v1/events",
        orjson.dumps({"events": {"type": "view"}}),
        422,
        "events",
    ),
    ("missing type", "/v1/events", orjson.dumps(event(type=None)), 422, "type"),
    ("type with spaces", "/v1/events", orjson.dumps(event(type="Page View")), 422, "type"),
    ("no user", "/v1/events", orjson.dumps(event(user_id=None)), 422, "user_id"),
    ("unknown top-level field", "/v1/events", orjson.dumps(event(colour="red")), 422, "colour"),
    (
        "naive timestamp",
        "/v1/events",
        orjson.dumps(event(timestamp="2026-01-01T10:00:00")),
        422,
        "timestamp",
    ),
    (
        "timestamp in seconds",
        "/v1/events",
        orjson.dumps(event(timestamp=1_767_225_600)),
        422,
        "timestamp",
    ),
    (
        "timestamp far in future",
        "/v1/events",
        orjson.dumps(event(timestamp="2099-01-01T00:00:00Z")),
        422,
        "timestamp",
    ),
    (
        "timestamp not a date",
        "/v1/events",
        orjson.dumps(event(timestamp="yesterday")),
        422,
        "timestamp",
    ),
    ("timestamp boolean", "/v1/events", orjson.dumps(event(timestamp=True)), 422, "timestamp"),
    (
        "quantity zero",
        "/v1/events",
        orjson.dumps(event(items=[{"item_id": "a", "quantity": 0}])),
        422,
        "items[0].quantity",
    ),
    ("items not a list", "/v1/events", orjson.dumps(event(items={"item_id": "a"})), 422, "items"),
    (
        "negative price",
        "/v1/events",
        orjson.dumps(event(items=[{"item_id": "a", "price": -1}])),
        422,
        "items[0].price",
    ),
    ("value not a number", "/v1/events", orjson.dumps(event(value="lots")), 422, "value"),
    (
        "properties too deep",
        "/v1/events",
        orjson.dumps(event(properties={"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}})),
        422,
        "properties",
    ),
    (
        "properties too large",
        "/v1/events",
        orjson.dumps(event(properties={"blob": "x" * 9000})),
        422,
        "properties",
    ),
    (
        "country not ISO",
        "/v1/events",
        orjson.dumps(event(context={"country": "France"})),
        422,
        "context.country",
    ),
    (
        "context value nested",
        "/v1/events",
        orjson.dumps(event(context={"ab": {"x": 1}})),
        422,
        "context",
    ),
    (
        "cart event without item",
        "/v1/events",
        orjson.dumps(event(type="add_to_cart", item_id=None)),
        422,
        "item_id",
    ),
    ("event id too long", "/v1/events", orjson.dumps(event(event_id="e" * 300)), 422, "event_id"),
    (
        "control character in user id",
        "/v1/events",
        orjson.dumps(event(user_id="a\x00b")),
        422,
        "user_id",
    ),
    (
        "atomic batch, one bad",
        "/v1/events?atomic=true",
        orjson.dumps({"events": [event(), event(type=1)]}),
        422,
        "events[1].type",
    ),
    ("atomic flag not boolean", "/v1/events?atomic=maybe", orjson.dumps(event()), 422, "atomic"),
    (
        "item with bad price",
        "/v1/items",
        orjson.dumps({"items": [{"item_id": "x", "price": "free"}]}),
        422,
        "items[0].price",
    ),
    ("item without id", "/v1/items", orjson.dumps({"title": "nameless"}), 422, "items[0].item_id"),
    (
        "item unknown field",
        "/v1/items",
        orjson.dumps({"item_id": "x", "colour": "red"}),
        422,
        "items[0].colour",
    ),
]


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize(
    ("name", "path", "body", "status", "field"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_input_is_refused_and_changes_nothing(
    api: Api, name: str, path: str, body: bytes, status: int, field: str
) -> None:
    before = api.fingerprint()
    response = api.client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["field"] == field
    assert error["message"]
    assert error["code"]
    assert api.fingerprint() == before


def test_oversized_body_is_413(api: Api) -> None:
    before = api.fingerprint()
    limit = api.engine.settings.max_body_bytes
    response = api.client.post(
        "/v1/events", content=b" " * (limit + 1), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert api.fingerprint() == before


def test_batch_over_the_limit_is_refused(api: Api) -> None:
    before = api.fingerprint()
    events = [event(event_id=f"e{i}") for i in range(api.engine.settings.max_batch + 1)]
    response = api.client.post("/v1/events", json={"events": events})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "events"
    assert api.fingerprint() == before
