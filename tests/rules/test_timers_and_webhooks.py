"""Timer rules (cart abandonment) and webhook delivery, on both backends."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from relevo.clock import ManualClock
from relevo.config import Settings
from relevo.engine import Engine
from relevo.rules.effects import timer_member
from relevo.rules.scheduler import LEASE, STALE_GRACE_MS
from relevo.store import keys
from tests.rules.conftest import MINUTE, T0, EngineFactory, event
from tests.support.polling import eventually

HOUR = 60 * MINUTE

ABANDONED = {
    "id": "cart-abandoned",
    "trigger": {"after": "add_to_cart", "inactive_for": "15m", "unless": ["purchase"]},
    "then": [{"emit": "cart_abandoned", "payload": {"offer": "10%"}}],
}


async def abandoned(engine: Engine) -> list[dict[str, Any]]:
    found = (await engine.actions(None, 100))["actions"]
    return [a for a in found if a["type"] == "cart_abandoned"]


async def at(engine: Engine, clock: ManualClock, when: int) -> int:
    """Move the clock and let the scheduler run, as its loop would."""
    clock.set(when)
    return await engine.scheduler.run_once()


async def add_to_cart(engine: Engine, user: str, when: int) -> None:
    await engine.ingest([event("add_to_cart", user, when, item_id="sho-001")])


async def test_abandoned_cart_fires_once_after_fifteen_minutes(
    engine: Engine, clock: ManualClock
) -> None:
    await engine.put_rules({"rules": [ABANDONED]})
    await add_to_cart(engine, "cart-1", T0)
    assert await at(engine, clock, T0 + 15 * MINUTE - 1) == 0
    assert await abandoned(engine) == []
    assert await at(engine, clock, T0 + 15 * MINUTE) == 1
    assert await at(engine, clock, T0 + 16 * MINUTE) == 0
    (action,) = await abandoned(engine)
    assert action["user_id"] == "cart-1"
    assert action["at"] == "2026-01-01T00:15:00.000Z"
    assert action["payload"] == {"offer": "10%"}


async def test_a_purchase_cancels_it(engine: Engine, clock: ManualClock) -> None:
    await engine.put_rules({"rules": [ABANDONED]})
    await add_to_cart(engine, "cart-2", T0)
    clock.set(T0 + 10 * MINUTE)
    await engine.ingest([event("purchase", "cart-2", T0 + 10 * MINUTE, value=20.0)])
    for minute in (15, 30, 60):
        assert await at(engine, clock, T0 + minute * MINUTE) == 0
    assert await abandoned(engine) == []
    assert await engine.store.zcard("timers:due") == 0


async def test_further_activity_pushes_it_back(engine: Engine, clock: ManualClock) -> None:
    await engine.put_rules({"rules": [ABANDONED]})
    await add_to_cart(engine, "cart-3", T0)
    clock.set(T0 + 10 * MINUTE)
    await engine.ingest([event("view", "cart-3", T0 + 10 * MINUTE, item_id="sho-002")])
    assert await at(engine, clock, T0 + 15 * MINUTE) == 0
    assert await at(engine, clock, T0 + 25 * MINUTE) == 1
    assert len(await abandoned(engine)) == 1


async def test_a_restart_in_between_still_fires_exactly_once(
    make_engine: EngineFactory, clock: ManualClock
) -> None:
    clock.set(T0)
    engine = await make_engine()
    await engine.put_rules({"rules": [ABANDONED]})
    await add_to_cart(engine, "cart-4", T0)
    clock.set(T0 + 5 * MINUTE)
    await engine.stop()
    restarted = await make_engine()
    assert await at(restarted, clock, T0 + 15 * MINUTE) == 1
    assert await at(restarted, clock, T0 + 20 * MINUTE) == 0
    assert len(await abandoned(restarted)) == 1
    await restarted.stop()
    again = await make_engine()  # and replaying the firing after another restart adds nothing
    assert await at(again, clock, T0 + 30 * MINUTE) == 0
    assert len(await abandoned(again)) == 1


async def two_processes_with_the_rule(
    make_engine: EngineFactory, clock: ManualClock, settings: Settings
) -> tuple[Engine, Engine]:
    """Two engines on one store at T0, the cart rule loaded in both (skips but on Redis)."""
    if not settings.is_redis:
        pytest.skip("two processes share one store only on Redis")
    clock.set(T0)
    first, second = await make_engine(), await make_engine()
    await first.put_rules({"rules": [ABANDONED]})
    await second.rules.refresh()
    return first, second


async def test_two_processes_fire_it_once(
    make_engine: EngineFactory, clock: ManualClock, settings: Settings
) -> None:
    first, second = await two_processes_with_the_rule(make_engine, clock, settings)
    await add_to_cart(first, "cart-5", T0)
    clock.set(T0 + 15 * MINUTE)
    assert await first.scheduler.run_once() == 1
    assert await second.scheduler.run_once() == 0  # first holds the lease: second reads nothing
    assert len(await abandoned(first)) == 1


async def test_the_lease_holder_alone_fires_until_it_hands_over(
    make_engine: EngineFactory, clock: ManualClock, settings: Settings
) -> None:
    """One process at a time reads the due index; a process that stops hands the lease
    over, so another fires what falls due next without waiting for the lease to expire."""
    first, second = await two_processes_with_the_rule(make_engine, clock, settings)
    assert await first.scheduler.run_once() == 0
    assert await first.store.get(LEASE) is None  # nothing due: no lease taken
    await add_to_cart(second, "cart-6", T0)
    await add_to_cart(second, "cart-7", T0 + 5 * MINUTE)
    assert await at(first, clock, T0 + 15 * MINUTE) == 1
    assert await at(second, clock, T0 + 20 * MINUTE) == 0  # first holds the lease
    await first.stop()
    assert await second.scheduler.run_once() == 1
    assert len(await abandoned(second)) == 2


async def test_a_scheduler_forgets_stale_entries_another_process_dropped(
    make_engine: EngineFactory, clock: ManualClock, settings: Settings
) -> None:
    """An index entry without its timer is watched for a grace period, then dropped, by
    the process holding the lease; when the lease has moved in between, the former
    holder must forget the entries too (a long-running process would otherwise hold
    every such entry it ever saw)."""
    if not settings.is_redis:
        pytest.skip("two processes share one store only on Redis")
    clock.set(T0)
    first, second = await make_engine(), await make_engine()
    orphans = {timer_member(f"gone-{n}", "cart-abandoned"): T0 - 1 for n in range(3)}
    await first.store.zadd(keys.TIMERS_DUE, orphans)
    assert await at(first, clock, T0) == 0  # first sees them stale, starts the grace period
    assert len(first.scheduler._stale_since) == 3
    await first.scheduler.release()  # the lease moves to second
    await second.scheduler.run_once()
    assert await at(second, clock, T0 + STALE_GRACE_MS) == 0  # second drops them
    assert await first.store.zrange_by_score(keys.TIMERS_DUE, 0, float("inf")) == []
    await second.scheduler.release()  # and back to first
    assert await at(first, clock, T0 + STALE_GRACE_MS + 1_000) == 0
    assert first.scheduler._stale_since == {}


async def test_history_fires_timers_in_event_time(engine: Engine, clock: ManualClock) -> None:
    """A backfill: the timer fires at t0+15 min, before the view at t0+20 min resets it."""
    await engine.put_rules({"rules": [ABANDONED]})
    engine.outbox.max_delay_ms = 0  # emit every action, however old (RELEVO_ACTION_MAX_DELAY=0)
    clock.set(T0 + 86_400_000)
    await engine.ingest(
        [
            event("add_to_cart", "hist", T0, item_id="sho-001"),
            event("view", "hist", T0 + 20 * MINUTE, item_id="sho-001"),
        ]
    )
    (action,) = await abandoned(engine)
    assert action["at"] == "2026-01-01T00:15:00.000Z"


def late_actions() -> float:
    return REGISTRY.get_sample_value("relevo_actions_late_total") or 0.0


ABANDONER = {**ABANDONED, "then": [*ABANDONED["then"], {"add_segment": "abandoner"}]}


async def test_a_backfill_does_not_send_old_actions_but_keeps_their_segments(
    engine: Engine, clock: ManualClock
) -> None:
    """Last month's abandoned carts are history, not offers to send today."""
    await engine.put_rules({"rules": [ABANDONER]})
    assert engine.outbox.max_delay_ms == HOUR  # the default
    late_before = late_actions()
    clock.set(T0 + 30 * 86_400_000)
    await engine.ingest(
        [
            event("add_to_cart", "old", T0, item_id="sho-001"),
            event("view", "old", T0 + 20 * MINUTE, item_id="sho-001"),
        ]
    )
    assert await abandoned(engine) == []
    assert late_actions() == late_before + 1
    profile = await engine.profile("old")
    assert profile is not None
    assert "abandoner" in profile["segments"]
    # A cart of an hour ago whose timer is still armed: its moment is now, so it is sent.
    await add_to_cart(engine, "recent", clock.now_ms() - HOUR)
    assert await at(engine, clock, clock.now_ms()) == 1
    (action,) = await abandoned(engine)
    assert action["user_id"] == "recent"


async def test_a_firing_hours_late_is_not_sent(engine: Engine, clock: ManualClock) -> None:
    """A scheduler that was down for two hours disarms the timer without sending."""
    await engine.put_rules({"rules": [ABANDONED]})
    await add_to_cart(engine, "outage", T0)
    assert await at(engine, clock, T0 + 15 * MINUTE + HOUR + 1) == 1
    assert await abandoned(engine) == []
    assert await engine.store.zcard(keys.TIMERS_DUE) == 0
    assert await at(engine, clock, T0 + 3 * HOUR) == 0


class Receiver:
    """An HTTP endpoint that fails a given number of times, then accepts."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.requests: list[tuple[int, dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                status = 500 if len(receiver.requests) < receiver.failures else 200
                receiver.requests.append(
                    (status, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accepted(self) -> list[tuple[int, dict[str, str], bytes]]:
        return [r for r in self.requests if r[0] == 200]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(failures=2)
    yield found
    found.server.shutdown()
    found.server.server_close()


async def test_webhook_retries_then_delivers_once_signed(
    settings: Settings, clock: ManualClock, receiver: Receiver
) -> None:
    secret = "a-long-webhook-secret"
    configured = settings.model_copy(
        update={"webhook_url": receiver.url, "webhook_secret": secret, "webhook_first_retry": 5}
    )
    engine = Engine(configured, clock)
    clock.set(T0)
    await engine.start(background=False)
    try:
        await engine.put_rules({"rules": [ABANDONED]})
        await add_to_cart(engine, "hooked", T0)
        await at(engine, clock, T0 + 15 * MINUTE)
        assert await engine.webhooks.run_once() == 1
        assert await engine.webhooks.run_once() == 0  # the cursor moved on
    finally:
        await engine.stop()
    assert [status for status, _, _ in receiver.requests] == [500, 500, 200]
    ((_, headers, body),) = receiver.accepted()
    action = orjson.loads(body)
    assert action["type"] == "cart_abandoned"
    assert headers["x-relevo-id"] == action["id"]
    stamp, _, sent = headers["x-relevo-signature"].partition(",v1=")
    expected = hmac.new(
        secret.encode(), stamp.removeprefix("t=").encode() + b"." + body, hashlib.sha256
    )
    assert hmac.compare_digest(sent, expected.hexdigest())


async def test_webhooks_run_in_the_background(
    settings: Settings, clock: ManualClock, receiver: Receiver
) -> None:
    receiver.failures = 0
    configured = settings.model_copy(
        update={"webhook_url": receiver.url, "webhook_secret": "another-long-secret"}
    )
    engine = Engine(configured, clock)
    clock.set(T0)
    await engine.start(background=True)
    try:
        await engine.put_rules({"rules": [ABANDONED]})
        await add_to_cart(engine, "bg", T0)
        clock.set(T0 + 16 * MINUTE)  # the scheduler and the deliverer loops do the rest
        await eventually(lambda: _delivered(receiver), within=10)
    finally:
        await engine.stop()


async def _delivered(receiver: Receiver) -> bool:
    return len(receiver.accepted()) == 1
