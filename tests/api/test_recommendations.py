"""Recommendations, similar items, propensity and models over HTTP."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api


def test_recommendations_answer_with_items_reasons_and_the_model(api: Api) -> None:
    api.client.post(
        "/v1/events",
        json={"events": [
            {"type": "view", "user_id": "http-a", "item_id": "boo-001", "session_id": "x"},
            {"type": "view", "user_id": "http-a", "item_id": "boo-003", "session_id": "x"},
        ]},
    )  # fmt: skip
    response = api.client.get("/v1/recommendations", params={"user_id": "http-b", "k": 3,
                                                             "item_id": "boo-001"})  # fmt: skip
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"user_id", "items", "model", "fallback"}
    assert body["model"] == {"name": "relevo", "version": None}
    assert body["fallback"] is True
    assert len(body["items"]) == 3
    first = body["items"][0]
    assert first["item_id"] == "boo-003"
    assert {"source": "covisitation", "model_version": "live"} in first["reasons"]
    books = api.client.get("/v1/recommendations?user_id=c&k=4&category=books").json()
    assert [item["item_id"][:4] for item in books["items"]] == ["boo-"] * 4


@pytest.mark.parametrize(
    ("query", "field"),
    [("k=3", "user_id"), ("user_id=u&k=0", "k"), ("user_id=u&k=101", "k"),
     ("user_id=u&exclude_seen=maybe", "exclude_seen")],
)  # fmt: skip
def test_recommendation_parameters_are_checked(api: Api, query: str, field: str) -> None:
    response = api.client.get(f"/v1/recommendations?{query}")
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


def test_similar_items_and_unknown_items(api: Api) -> None:
    found = api.client.get("/v1/items/sho-001/similar?k=4").json()
    assert found["item_id"] == "sho-001"
    assert len(found["items"]) == 4
    assert "sho-001" not in [item["item_id"] for item in found["items"]]
    missing = api.client.get("/v1/items/none-such/similar")
    assert missing.status_code == 404
    assert missing.json()["error"]["field"] == "item_id"


def test_propensity_without_a_model_and_bad_bodies(api: Api) -> None:
    body = {"user_id": "u", "candidates": [{"variant_id": "A"}], "context": {"device": "mobile"}}
    answer = api.client.post("/v1/propensity", json=body).json()
    assert answer["scores"] == [{"id": "A", "p": None}]
    assert answer["fallback"] is True
    for bad, field in [
        ([], "body"),
        ({"candidates": "A"}, "candidates"),
        ({"candidates": [{}]}, "candidates[0]"),
        ({"candidates": [], "target": "dwell"}, "target"),
        ({"candidates": [], "user_id": 3}, "user_id"),
    ]:
        response = api.client.post("/v1/propensity", json=bad)
        assert response.status_code == 422, bad
        assert response.json()["error"]["field"] == field


def test_models_listing_and_errors(api: Api) -> None:
    listing = api.client.get("/v1/models").json()["models"]
    assert [entry["name"] for entry in listing][:2] == ["relevo", "propensity"]
    assert listing[0] == {"name": "relevo", "active": None, "served": None, "versions": []}
    assert api.client.post("/v1/models/relevo/promote", json={"version": "v7"}).status_code == 404
    assert api.client.post("/v1/models/relevo/promote", json={}).status_code == 422
    assert api.client.post("/v1/models/relevo/promote", json=[1]).status_code == 422
    assert api.client.post("/v1/models/relevo/rollback").status_code == 404
    assert api.client.post("/v1/models/nope/train").status_code == 404
    response = api.client.post("/v1/models/relevo/train", json={"promote": "yes"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "promote"
