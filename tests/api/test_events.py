"""``POST /v1/events``: results per event, idempotency, batches, atomic batches."""

from __future__ import annotations

import itertools
from typing import Any

from tests.api.conftest import Api

_users = itertools.count()


def new_user() -> str:
    return f"user-{next(_users)}"


def view(user: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "view",
        "user_id": user,
        "item_id": "sho-001",
        "timestamp": "2026-01-01T00:00:00Z",
        **extra,
    }


def views_of(api: Api, user: str) -> int:
    response = api.client.get(f"/v1/users/{user}")
    assert response.status_code == 200, response.text
    total: int = response.json()["counts"]["view"]["total"]
    return total


def test_single_event_is_accepted_and_applied(api: Api) -> None:
    user = new_user()
    response = api.client.post("/v1/events", json=view(user, event_id="one"))
    assert response.status_code == 200
    assert response.json() == {
        "accepted": 1,
        "duplicate": 0,
        "rejected": 0,
        "results": [{"index": 0, "status": "accepted", "event_id": "one"}],
    }
    profile = api.client.get(f"/v1/users/{user}").json()
    assert profile["category_counts"]["view"]["shoes"]["total"] == 1  # category from the catalog
    assert profile["recent_items"] == ["sho-001"]


def test_same_event_id_twice_is_counted_once(api: Api) -> None:
    user = new_user()
    first = api.client.post("/v1/events", json=view(user, event_id=f"{user}-e"))
    again = api.client.post("/v1/events", json=view(user, event_id=f"{user}-e", item_id="other"))
    assert first.json()["accepted"] == 1
    assert again.json()["results"][0]["status"] == "duplicate"
    assert views_of(api, user) == 1


def test_same_content_without_id_is_counted_once(api: Api) -> None:
    user = new_user()
    first = api.client.post("/v1/events", json=view(user)).json()
    again = api.client.post("/v1/events", json=view(user)).json()
    assert again["results"][0] == {**first["results"][0], "status": "duplicate"}
    # the same instant written as epoch milliseconds is the same event
    millis = api.client.post("/v1/events", json=view(user, timestamp=1_767_225_600_000)).json()
    assert millis["duplicate"] == 1
    assert views_of(api, user) == 1


def test_duplicates_inside_one_batch(api: Api) -> None:
    user = new_user()
    body = {
        "events": [view(user, event_id="x"), view(user, event_id="x"), view(user, event_id="y")]
    }
    result = api.client.post("/v1/events", json=body).json()
    assert [r["status"] for r in result["results"]] == ["accepted", "duplicate", "accepted"]
    assert views_of(api, user) == 2


def test_batch_rejects_bad_events_one_by_one(api: Api) -> None:
    user = new_user()
    body = {
        "events": [
            view(user, event_id="good-1"),
            {"type": "view", "user_id": user, "timestamp": "yesterday"},
            view(user, event_id="good-2"),
        ]
    }
    response = api.client.post("/v1/events", json=body)
    assert response.status_code == 200
    result = response.json()
    assert (result["accepted"], result["rejected"]) == (2, 1)
    rejected = result["results"][1]
    assert rejected["status"] == "rejected"
    assert rejected["error"]["field"] == "events[1].timestamp"
    assert views_of(api, user) == 2


def test_atomic_batch_is_all_or_nothing(api: Api) -> None:
    user = new_user()
    before = api.fingerprint()
    body = {"events": [view(user, event_id="a1"), {"type": "view", "user_id": user, "zz": 1}]}
    response = api.client.post("/v1/events?atomic=true", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_batch"
    assert error["field"] == "events[1].zz"
    assert [r["index"] for r in error["results"]] == [1]
    assert api.fingerprint() == before
    assert api.client.get(f"/v1/users/{user}").status_code == 404
    good = api.client.post("/v1/events?atomic=true", json={"events": [view(user, event_id="a1")]})
    assert good.json()["accepted"] == 1


def test_empty_batch_is_fine(api: Api) -> None:
    response = api.client.post("/v1/events", json={"events": []})
    assert response.json() == {"accepted": 0, "duplicate": 0, "rejected": 0, "results": []}


def test_unknown_user_is_404_with_error_shape(api: Api) -> None:
    response = api.client.get("/v1/users/nobody-at-all")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_anonymous_users_get_profiles(api: Api) -> None:
    anonymous = f"anon-{new_user()}"
    api.client.post(
        "/v1/events", json={"type": "view", "anonymous_id": anonymous, "category": "books"}
    )
    assert api.client.get(f"/v1/users/{anonymous}").json()["counts"]["view"]["5m"] == 1


def test_recent_events_and_stats(api: Api) -> None:
    user = new_user()
    api.client.post(
        "/v1/events", json={"type": "wishlist_add", "user_id": user, "item_id": "boo-001"}
    )
    recent = api.client.get("/v1/events/recent?limit=5").json()["events"]
    assert recent[0]["user_id"] == user
    assert recent[0]["type"] == "wishlist_add"
    stats = api.client.get("/v1/stats").json()
    assert stats["events"]["wishlist_add"]["total"] >= 1
    assert stats["items"] == 240


def test_healthz_reports_the_backend(api: Api) -> None:
    body = api.client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["checks"]["store"]["ok"]
    assert body["checks"]["log"]["ok"]
    assert body["backend"] == api.engine.store.backend
