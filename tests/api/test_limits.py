"""Limits at their boundaries: exactly at the limit passes, one over is refused by name."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.api.conftest import Api


def view(**changes: Any) -> dict[str, Any]:
    return {"type": "view", "user_id": "limits-user", "item_id": "sho-001", **changes}


def properties_of_size(size: int) -> dict[str, str]:
    overhead = len(orjson.dumps({"p": ""}))
    return {"p": "x" * (size - overhead)}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"event_id": "e" * 256}, None),
        ({"event_id": "e" * 257}, "event_id"),
        ({"user_id": "u" * 256}, None),
        ({"user_id": "u" * 257}, "user_id"),
        ({"category": "c" * 128}, None),
        ({"category": "c" * 129}, "category"),
        ({"properties": properties_of_size(8192)}, None),
        ({"properties": properties_of_size(8193)}, "properties"),
        ({"properties": {"a": {"b": {"c": {"d": 1}}}}}, None),  # 5 levels with the root
        ({"items": [{"item_id": f"i{n}"} for n in range(100)]}, None),
        ({"items": [{"item_id": f"i{n}"} for n in range(101)]}, "items"),
        ({"context": {"page": "p" * 2048}}, None),
        ({"context": {"page": "p" * 2049}}, "context.page"),
        ({"context": {f"k{n}": n for n in range(21)}}, "context"),
    ],
)
def test_event_limits(api: Api, changes: dict[str, Any], field: str | None) -> None:
    response = api.client.post("/v1/events", json=view(**changes))
    if field is None:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 422
        assert response.json()["error"]["field"] == field


def test_an_item_batch_over_the_limit_is_refused(api: Api) -> None:
    items = [{"item_id": f"lim-{n}"} for n in range(api.engine.settings.max_batch + 1)]
    response = api.client.post("/v1/items", json={"items": items})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "batch_too_large"
