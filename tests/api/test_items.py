"""The catalog over HTTP."""

from __future__ import annotations

from tests.api.conftest import Api


def test_upsert_get_and_list_items(api: Api) -> None:
    body = {"items": [{"item_id": "new-1", "title": "Tea", "category": "kitchen", "price": 4.5}]}
    assert api.client.post("/v1/items", json=body).json() == {"upserted": 1}
    item = api.client.get("/v1/items/new-1").json()
    assert (item["title"], item["category"], item["in_stock"]) == ("Tea", "kitchen", True)
    api.client.post("/v1/items", json={"item_id": "new-1", "title": "Green tea"})
    assert api.client.get("/v1/items/new-1").json()["title"] == "Green tea"
    listing = api.client.get("/v1/items?limit=5").json()
    assert len(listing["items"]) == 5
    assert listing["total"] >= 241


def test_missing_item_is_404(api: Api) -> None:
    response = api.client.get("/v1/items/none-such")
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "not_found",
        "message": "no item 'none-such'",
        "field": "item_id",
    }


def test_item_batch_is_all_or_nothing(api: Api) -> None:
    before = api.fingerprint()
    body = {"items": [{"item_id": "ok-1"}, {"item_id": "bad", "price": -3}]}
    response = api.client.post("/v1/items", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "items[1].price"
    assert api.fingerprint() == before
    assert api.client.get("/v1/items/ok-1").status_code == 404


def test_events_get_category_and_price_from_the_catalog(api: Api) -> None:
    api.client.post("/v1/items", json={"item_id": "priced", "category": "toys", "price": 12.5})
    event = {
        "type": "purchase",
        "user_id": "buyer-1",
        "items": [{"item_id": "priced", "quantity": 2}],
    }
    api.client.post("/v1/events", json=event)
    profile = api.client.get("/v1/users/buyer-1").json()
    assert profile["rfm"]["monetary"] == 25.0
    assert profile["category_counts"]["purchase"]["toys"]["total"] == 1


def test_events_get_the_category_the_catalog_has_now(api: Api) -> None:
    """Enrichment keeps decoded documents (`relevo.catalog`), never past a change."""
    api.client.post("/v1/items", json={"item_id": "moving", "category": "before"})
    view = {"type": "view", "user_id": "viewer-1", "item_id": "moving"}
    assert api.client.post("/v1/events", json={**view, "event_id": "v1"}).json()["accepted"] == 1
    api.client.post("/v1/items", json={"item_id": "moving", "category": "after"})
    assert api.client.post("/v1/events", json={**view, "event_id": "v2"}).json()["accepted"] == 1
    counts = api.client.get("/v1/users/viewer-1").json()["category_counts"]["view"]
    assert (counts["before"]["total"], counts["after"]["total"]) == (1, 1)


def test_remove_an_item(api: Api) -> None:
    api.client.post("/v1/items", json={"item_id": "leaving", "category": "toys"})
    response = api.client.delete("/v1/items/leaving")
    assert response.status_code == 200
    assert response.json() == {"item_id": "leaving", "removed": True, "existed": True}
    assert api.client.get("/v1/items/leaving").status_code == 404
    again = api.client.delete("/v1/items/leaving")
    assert again.json() == {"item_id": "leaving", "removed": True, "existed": False}


def test_a_bad_item_id_to_remove_is_refused_and_changes_nothing(api: Api) -> None:
    before = api.fingerprint()
    response = api.client.delete("/v1/items/" + "x" * 300)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "item_id"
    assert api.fingerprint() == before


def test_remove_several_items(api: Api) -> None:
    api.client.post("/v1/items", json={"items": [{"item_id": "old-1"}, {"item_id": "old-2"}]})
    body = {"item_ids": ["old-1", "old-2", "old-1", "never-listed"]}
    response = api.client.post("/v1/items/remove", json=body)
    assert response.status_code == 200
    assert response.json() == {"removed": 3, "existed": ["old-1", "old-2"]}
    for item_id in ("old-1", "old-2"):
        assert api.client.get(f"/v1/items/{item_id}").status_code == 404


def test_a_bad_removal_names_the_id_and_removes_nothing(api: Api) -> None:
    api.client.post("/v1/items", json={"item_id": "stays"})
    before = api.fingerprint()
    for body, field in (
        ({"item_ids": ["stays", "bad\x01id"]}, "item_ids[1]"),
        ({"item_ids": []}, "item_ids"),
        ({"item_ids": ["stays"], "extra": 1}, "extra"),
        (["stays"], "body"),
    ):
        response = api.client.post("/v1/items/remove", json=body)
        assert response.status_code == 422, body
        assert response.json()["error"]["field"] == field
    assert api.fingerprint() == before
    assert api.client.get("/v1/items/stays").status_code == 200
