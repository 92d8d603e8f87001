"""`GET /v1/store/stats` (admin): the store's keys and bytes per structure."""

from __future__ import annotations

from tests.api.conftest import Api


def test_store_stats_reports_profiles_with_ttls(api: Api) -> None:
    events = [{"type": "view", "user_id": f"ss-{n}", "item_id": "sku-1"} for n in range(3)]
    assert api.client.post("/v1/events", json={"events": events}).status_code == 200
    response = api.client.get("/v1/store/stats", params={"sample": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kinds"]["profile"]["keys"] >= 3
    assert body["kinds"]["profile"]["sampled"] == 2
    assert body["kinds"]["items"]["keys"] > 0
    assert body["totals"]["user_keys_without_ttl"] == 0
    assert api.client.get("/v1/store/stats", params={"sample": 0}).status_code == 422
