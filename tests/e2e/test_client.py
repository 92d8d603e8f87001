"""The Python client against a live `relevo serve` (no mocks): verbs, errors, retries."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relevo.client import ApiError, AsyncClient, Client
from tests.support.servers import RelevoServer

pytestmark = pytest.mark.slow
WRITE, ADMIN = "client-write", "client-admin"


def serve(directory: Path, **env: str) -> RelevoServer:
    directory.mkdir(parents=True, exist_ok=True)
    base = {
        "RELEVO_DATA_DIR": str(directory / "data"),
        "RELEVO_WRITE_KEY": WRITE,
        "RELEVO_ADMIN_KEY": ADMIN,
        "RELEVO_DEMO_CATALOG": "true",
    }
    return RelevoServer({**base, **env}, directory / "server.log").start()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelevoServer]:
    running = serve(tmp_path_factory.mktemp("client"))
    yield running
    running.stop()


def test_the_sync_client_speaks_every_verb(server: RelevoServer) -> None:
    with Client(server.url, WRITE) as site, Client(server.url, ADMIN) as admin:
        tracked = site.track("view", user_id="c-1", item_id="sho-001")
        assert (tracked.accepted, tracked.rejected) == (1, 0)
        assert tracked.results[0].event_id  # the client named the event
        batch = site.send(
            [{"type": "click", "user_id": "c-1", "item_id": "sho-001"}, {"type": "nope!"}]
        )
        assert (batch.accepted, batch.rejected) == (1, 1)
        assert batch.results[1].error is not None
        assert site.identify("c-1", anonymous_id="anon-1", traits={"plan": "pro"}).accepted == 1
        state = site.consent("c-1", analytics=False)
        assert state.consent == {"analytics": False}
        assert admin.upsert_items([{"item_id": "c-item", "title": "Cup", "category": "home"}]) == 1
        assert admin.remove_item("c-item") is True
        assert admin.remove_item("c-item") is False  # idempotent
        assert admin.remove_items(["c-item"]) == []
        profile = admin.profile("c-1")
        assert profile is not None
        assert profile.counts["view"]["total"] == profile.counts["click"]["total"] == 1
        assert profile.consent == {"analytics": False}
        assert profile.recent_items == ["sho-001"]
        assert admin.profile("nobody") is None
        receipt = admin.erase_user("c-1")
        assert receipt.user_id == "c-1"
        assert receipt.removed["store_keys"] == 2
        assert admin.profile("c-1") is None
        assert admin.compact_archive(grace_seconds=0)["tombstones_applied"] >= 0


def test_errors_carry_the_server_code_and_field(server: RelevoServer) -> None:
    with Client(server.url, WRITE) as site, Client(server.url) as anonymous:
        with pytest.raises(ApiError) as refused:
            site.upsert_items([{"item_id": "x"}])
        assert (refused.value.status, refused.value.code) == (403, "forbidden")
        with pytest.raises(ApiError) as unauthenticated:
            anonymous.track("view", user_id="c-2")
        assert unauthenticated.value.status == 401
        with pytest.raises(ApiError) as invalid:
            site.track("view")
        assert (invalid.value.status, invalid.value.field) == (422, "user_id")
        with pytest.raises(ApiError) as missing:  # POST /v1/decide arrives with decisions
            site.decide("home_hero", "c-2", {"page": "/"}, k=3)
        assert missing.value.status == 404


async def test_the_async_client_speaks_the_same_verbs(server: RelevoServer) -> None:
    async with AsyncClient(server.url, WRITE) as site, AsyncClient(server.url, ADMIN) as admin:
        assert (await site.track("view", user_id="c-3", item_id="sho-001")).accepted == 1
        assert (await site.identify("c-3")).accepted == 1
        assert (await site.consent("c-3", personalization=False)).consent == {
            "personalization": False
        }
        profile = await admin.profile("c-3")
        assert profile is not None
        assert profile.events == 0  # refusing personalization cleared it
        assert (await admin.upsert_items([{"item_id": "c-item-2"}])) == 1
        assert (await admin.remove_item("c-item-2")) is True
        assert (await admin.upsert_items([{"item_id": "c-item-3"}])) == 1
        assert (await admin.remove_items(["c-item-3", "c-item-2"])) == ["c-item-3"]
        assert (await admin.erase_user("c-3")).removed["store_keys"] == 2
        with pytest.raises(ApiError):
            await site.erase_user("c-3")


def test_429_is_retried_after_retry_after(tmp_path: Path) -> None:
    limited = serve(tmp_path, RELEVO_RATE_LIMIT="1", RELEVO_RATE_BURST="1")
    try:
        with Client(limited.url, WRITE) as site, Client(limited.url, WRITE, max_retries=0) as hasty:
            site.track("view", user_id="c-4")
            with pytest.raises(ApiError) as refused:
                hasty.track("view", user_id="c-4")
            assert refused.value.status == 429
            started = time.monotonic()
            assert site.track("view", user_id="c-4").accepted == 1  # waited, then got through
            assert time.monotonic() - started >= 0.9
    finally:
        limited.stop()
