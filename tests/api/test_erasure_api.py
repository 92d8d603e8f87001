"""``DELETE /v1/users/{id}``: admin only, a receipt, and the profile is gone."""

from __future__ import annotations

from tests.api.conftest import Api


def test_delete_erases_and_returns_a_receipt(api: Api) -> None:
    user = "api-erase"
    api.client.post("/v1/events", json={"type": "view", "user_id": user, "item_id": "sho-001"})
    response = api.client.delete(f"/v1/users/{user}")
    assert response.status_code == 200
    receipt = response.json()
    assert receipt["user_id"] == user
    assert set(receipt) == {"receipt_id", "user_id", "erased_at", "removed", "pending"}
    # the profile and its dedupe marks: one key on Redis (marks inside), two embedded
    assert receipt["removed"]["store_keys"] == (1 if api.engine.store.backend == "redis" else 2)
    assert receipt["erased_at"].endswith("Z")
    assert api.client.get(f"/v1/users/{user}").status_code == 404
    again = api.client.delete(f"/v1/users/{user}").json()
    assert again["removed"]["store_keys"] == 0
    assert again["receipt_id"] != receipt["receipt_id"]


def test_compaction_endpoint_reports(api: Api) -> None:
    response = api.client.post("/v1/archive/compact?grace_seconds=0")
    assert response.status_code == 200
    assert set(response.json()) >= {"tombstones_applied", "rows_removed", "partitions_expired"}


def test_a_user_id_too_long_is_422(api: Api) -> None:
    response = api.client.delete("/v1/users/" + "x" * 300)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "user_id"
