"""Rules in the ingest path: thresholds, context, versions, rollback, errors, stats."""

from __future__ import annotations

from typing import Any

import pytest

from relevo.clock import ManualClock
from relevo.config import Settings
from relevo.engine import Engine
from relevo.errors import InvalidInput
from tests.rules.conftest import MINUTE, T0, EngineFactory, event

BURST = {
    "id": "electronics-burst",
    "trigger": {"on": "view"},
    "when": "profile.category_counts.view['electronics']['5m'] > 3",
    "then": [{"add_segment": "electronics-burst"}],
}


async def segments(engine: Engine, user: str) -> list[str]:
    profile = await engine.profile(user)
    assert profile is not None
    found: list[str] = profile["segments"]
    return found


async def view_at(engine: Engine, clock: ManualClock, user: str, at: int) -> None:
    clock.set(at)
    report = await engine.ingest([event("view", user, at, category="electronics")])
    assert report.count("accepted") == 1


async def test_threshold_fires_on_the_fourth_view_within_five_minutes(
    engine: Engine, clock: ManualClock
) -> None:
    await engine.put_rules({"rules": [BURST]})
    for n, minute in enumerate((0, 1, 2, 4)):
        await view_at(engine, clock, "burst", T0 + minute * MINUTE)
        assert ("electronics-burst" in await segments(engine, "burst")) == (n == 3)


async def test_threshold_does_not_fire_for_views_spread_over_six_minutes(
    engine: Engine, clock: ManualClock
) -> None:
    await engine.put_rules({"rules": [BURST]})
    for minute in (0, 2, 4, 6):
        await view_at(engine, clock, "spread", T0 + minute * MINUTE)
    assert await segments(engine, "spread") == []


@pytest.mark.parametrize(
    "when",
    [
        "event.timestamp.startsWith('2026-01-01T00:')",  # a field of the event
        "has(event.timestamp) && event['timestamp'].endsWith('Z')",  # whole-event reads
        "size(event) > 0 && event.timestamp.endsWith('.000Z')",
    ],
)
async def test_rules_read_the_event_time_in_iso_form(
    engine: Engine, clock: ManualClock, when: str
) -> None:
    """Events keep their time as epoch ms; rules that read it see it formatted."""
    timed = {"id": "timed", "trigger": {"on": "view"}, "when": when}
    untimed = {**BURST, "id": "untimed", "trigger": {"on": "click"}}
    rules = [{**timed, "then": [{"add_segment": "timed"}]}, untimed]
    await engine.put_rules({"rules": rules})
    await view_at(engine, clock, "timed", T0)
    assert await segments(engine, "timed") == ["timed"]


CONTEXT_RULES = [
    {
        "id": "instagram-mobile",
        "priority": 10,
        "trigger": {"on": "decide", "placement": "home_hero"},
        "when": 'context.device == "mobile" && context.referrer.contains("instagram")',
        "then": [{"variant": "B"}],
    },
    {
        "id": "default-variant",
        "trigger": {"on": "decide", "placement": "home_hero"},
        "then": [{"variant": "A"}],
    },
]


@pytest.mark.parametrize(
    ("context", "variant"),
    [
        ({"device": "mobile", "referrer": "https://www.instagram.com/p/1"}, "B"),
        ({"device": "desktop", "referrer": "https://www.instagram.com/p/1"}, "A"),
        ({"device": "mobile", "referrer": "https://news.example.com"}, "A"),
    ],
)
async def test_context_selects_the_variant(
    engine: Engine, context: dict[str, Any], variant: str
) -> None:
    await engine.put_rules({"rules": CONTEXT_RULES})
    result = await engine.test_rules(
        {"user_id": "ctx", "placement": "home_hero", "context": context}
    )
    assert result["decision"]["variant"] == variant
    explained = {entry["rule_id"]: entry for entry in result["explain"]}
    assert explained["instagram-mobile"]["matched"] is (variant == "B")
    seen = {
        path["source"]: path["value"]
        for path in explained["instagram-mobile"]["condition"]["paths"]
    }
    assert seen["context.device"] == context["device"]


@pytest.mark.parametrize(
    ("condition", "position"),
    [("profile.counts.view['5m'] >", "1:"), ("lowerCase(context.device) == 'x'", "1:1")],
    ids=["syntax error", "unknown function"],
)
async def test_invalid_rule_is_refused_with_its_position_and_nothing_changes(
    engine: Engine, condition: str, position: str
) -> None:
    first = await engine.put_rules({"rules": [BURST]})
    bad = {
        "id": "broken",
        "trigger": {"on": "view"},
        "when": condition,
        "then": [{"add_segment": "x"}],
    }
    with pytest.raises(InvalidInput) as refused:
        await engine.put_rules({"rules": [BURST, bad]})
    error = refused.value.to_dict()
    assert error["code"] == "invalid_rules"
    assert "broken" in error["message"]
    assert error["details"][0]["rule_id"] == "broken"
    assert error["details"][0]["line"] == 1
    assert position in f"{error['details'][0]['line']}:{error['details'][0]['column']}"
    assert engine.rules.current.version == first["version"]


async def test_same_rules_again_make_no_new_version(engine: Engine) -> None:
    first = await engine.put_rules([BURST])
    again = await engine.put_rules({"rules": [BURST]})
    assert (first["changed"], again["changed"]) == (True, False)
    assert again["version"] == first["version"]


async def test_rollback_restores_earlier_behaviour_at_once(
    engine: Engine, clock: ManualClock
) -> None:
    await engine.put_rules({"rules": [BURST]})
    loose = {**BURST, "when": "profile.category_counts.view['electronics']['5m'] > 0"}
    changed = await engine.put_rules({"rules": [loose]})
    await view_at(engine, clock, "roll-1", T0)
    assert await segments(engine, "roll-1") == ["electronics-burst"]
    rolled = await engine.rollback_rules(None)
    assert rolled == {"version": "v1", "previous": changed["version"]}
    await view_at(engine, clock, "roll-2", T0 + 1)
    assert await segments(engine, "roll-2") == []
    versions = await engine.rules.versions()
    assert [(v["version"], v["active"]) for v in versions] == [("v1", True), ("v2", False)]


async def test_a_failing_rule_is_counted_and_skipped(engine: Engine, clock: ManualClock) -> None:
    failing = {
        **BURST,
        "id": "missing-key",
        "when": "profile.category_counts.view['nope']['5m'] > 0",
    }
    await engine.put_rules({"rules": [failing, {**BURST, "when": "true", "id": "always"}]})
    await view_at(engine, clock, "err", T0)
    assert await segments(engine, "err") == ["electronics-burst"]
    stats = await engine.rule_stats.read()
    assert stats["missing-key"]["errors"] == 1
    assert stats["missing-key"]["fires"] == 0
    assert stats["always"]["fires"] == 1
    assert stats["always"]["last_fired"] == "2026-01-01T00:00:00.000Z"


async def test_only_rules_of_the_event_type_are_evaluated(
    engine: Engine, clock: ManualClock
) -> None:
    rules = [{**BURST, "id": f"click-{n}", "trigger": {"on": "click"}} for n in range(50)]
    await engine.put_rules({"rules": [BURST, *rules]})
    await view_at(engine, clock, "index", T0)
    stats = await engine.rule_stats.read()
    assert stats["electronics-burst"]["evaluations"] == 1
    assert all(f"click-{n}" not in stats for n in range(50))


async def test_set_attribute_and_emit(engine: Engine, clock: ManualClock) -> None:
    rule = {
        "id": "big-spender",
        "trigger": {"on": "purchase"},
        "when": "profile.rfm.monetary > 100.0",
        "then": [
            {"set_attribute": {"name": "tier", "value": "gold"}},
            {"emit": "vip_reached", "payload": {"channel": "email"}},
        ],
    }
    await engine.put_rules({"rules": [rule]})
    await engine.ingest([event("purchase", "vip", T0, value=150.0)])
    profile = await engine.profile("vip")
    assert profile is not None
    assert profile["attributes"] == {"tier": "gold"}
    pulled = await engine.actions(None, 10)
    assert [(a["type"], a["rule_id"], a["user_id"], a["payload"]) for a in pulled["actions"]] == [
        ("vip_reached", "big-spender", "vip", {"channel": "email"})
    ]
    assert (await engine.actions(pulled["next"], 10))["actions"] == []


@pytest.mark.redis
async def test_a_change_reaches_every_process(
    make_engine: EngineFactory, clock: ManualClock, settings: Settings
) -> None:
    if not settings.is_redis:
        pytest.skip("several processes share state only on Redis")
    clock.set(T0)
    first, second = await make_engine(), await make_engine()
    changed = await first.put_rules({"rules": [BURST]})
    await second.rules.refresh()  # what its refresh loop does every second
    assert second.rules.current.version == changed["version"]


async def test_rules_survive_a_restart(make_engine: EngineFactory, clock: ManualClock) -> None:
    clock.set(T0)
    engine = await make_engine()
    changed = await engine.put_rules({"rules": [BURST]})
    await engine.stop()
    restarted = await make_engine()
    assert restarted.rules.current.version == changed["version"]
    assert (await restarted.health())["rules"] == {"version": changed["version"]}
