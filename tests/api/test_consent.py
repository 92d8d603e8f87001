"""Consent: an opted-out user's profile stays empty while site-wide counts include them."""

from __future__ import annotations

from typing import Any

import pytest

from relevo.clock import ManualClock
from relevo.config import Settings
from relevo.engine import Engine
from tests.api.conftest import Api


def views(user: str, count: int, start: int = 0) -> dict[str, Any]:
    return {
        "events": [
            {"event_id": f"{user}-v{n}", "type": "view", "user_id": user, "item_id": "sho-001"}
            for n in range(start, start + count)
        ]
    }


def view_total(api: Api) -> int:
    return int(api.client.get("/v1/stats").json()["events"].get("view", {}).get("total", 0))


def test_an_opted_out_user_has_an_empty_profile_but_is_counted(api: Api) -> None:
    user = "consent-out"
    api.client.post("/v1/events", json=views(user, 3))
    assert api.client.get(f"/v1/users/{user}").json()["counts"]["view"]["total"] == 3
    refusal = {"type": "consent", "user_id": user, "properties": {"personalization": False}}
    assert api.client.post("/v1/events", json=refusal).status_code == 200
    before = view_total(api)
    report = api.client.post("/v1/events", json=views(user, 4, start=3)).json()
    assert report["accepted"] == 4
    profile = api.client.get(f"/v1/users/{user}").json()
    assert profile["consent"] == {"personalization": False}
    assert profile["events"] == 0
    assert profile["counts"] == profile["category_counts"] == profile["affinities"] == {}
    assert profile["recent_items"] == profile["cart"] == profile["segments"] == []
    assert profile["session"] is None
    assert view_total(api) == before + 4  # site-wide aggregates still count them
    # the same events again are duplicates: the marks are kept even though nothing was folded
    assert api.client.post("/v1/events", json=views(user, 4, start=3)).json()["duplicate"] == 4


def test_consent_through_the_api_and_granting_again(api: Api) -> None:
    user = "consent-api"
    response = api.client.put(f"/v1/users/{user}/consent", json={"personalization": False})
    assert response.status_code == 200
    assert response.json() == {"user_id": user, "consent": {"personalization": False}}
    api.client.post("/v1/events", json=views(user, 2))
    assert api.client.get(f"/v1/users/{user}").json()["events"] == 0
    granted = api.client.put(f"/v1/users/{user}/consent", json={"analytics": True})
    assert granted.json()["consent"] == {"personalization": False, "analytics": True}
    api.client.put(f"/v1/users/{user}/consent", json={"personalization": True})
    api.client.post("/v1/events", json=views(user, 2, start=2))
    profile = api.client.get(f"/v1/users/{user}").json()
    assert profile["counts"]["view"]["total"] == 2  # only what came after the grant
    assert profile["consent"] == {"personalization": True, "analytics": True}


@pytest.mark.parametrize(
    "body", [{}, {"personalization": "yes"}, {"ads": True}, {"personalization": None}]
)
def test_consent_needs_a_purpose_and_booleans(api: Api, body: dict[str, Any]) -> None:
    before = api.fingerprint()
    response = api.client.put("/v1/users/consent-bad/consent", json=body)
    assert response.status_code == 422
    assert api.fingerprint() == before


async def test_personalization_allowed_by_default_and_in_opt_in_mode(
    settings: Settings, clock: ManualClock
) -> None:
    for required in (False, True):
        engine = Engine(settings.model_copy(update={"consent_required": required}), clock)
        await engine.start(background=False)
        try:
            user = f"opt-{required}"
            await engine.ingest(views(user, 2)["events"])
            assert await engine.personalization_allowed(user) is not required
            assert await engine.personalization_allowed("never-seen") is not required
            profile = await engine.profile(user)
            assert profile is not None
            assert profile["events"] == (0 if required else 2)
            await engine.set_consent(user, {"personalization": True})
            await engine.ingest(views(user, 1, start=2)["events"])
            assert await engine.personalization_allowed(user)
            profile = await engine.profile(user)
            assert profile is not None
            assert profile["counts"]["view"]["total"] == (1 if required else 3)
        finally:
            await engine.stop()
