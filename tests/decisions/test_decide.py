"""`Engine.decide`: variants, items, rules, caps, consent, versions."""

from __future__ import annotations

from typing import Any

import pytest

from relevo.clock import ManualClock
from relevo.engine import Engine
from relevo.errors import InvalidInput, NotFound
from tests.decisions.conftest import T0

MOBILE_INSTAGRAM = {"device": "mobile", "referrer": "https://www.instagram.com/p/1"}
CONTEXT_RULES = {
    "rules": [
        {
            "id": "instagram-mobile",
            "trigger": {"on": "decide", "placement": "home_hero"},
            "when": 'context.device == "mobile" && context.referrer.contains("instagram")',
            "then": [{"variant": "B"}],
        }
    ]
}


async def decide(engine: Engine, user: str, placement: str, **extra: Any) -> dict[str, Any]:
    return await engine.decide({"user_id": user, "placement": placement, **extra})


async def test_context_rule_selects_variant_b_and_desktop_gets_a(engine: Engine) -> None:
    await engine.put_rules(CONTEXT_RULES)
    mobile = await decide(engine, "ctx-1", "home_hero", context=MOBILE_INSTAGRAM)
    desktop = await decide(
        engine, "ctx-1", "home_hero", context={**MOBILE_INSTAGRAM, "device": "desktop"}
    )
    assert (mobile["variant"]["id"], desktop["variant"]["id"]) == ("B", "A")
    assert mobile["rules"] == ["instagram-mobile"]
    assert mobile["versions"] == {"rules": "v1", "placements": "v1", "experiments": "v0"}
    assert mobile["fallback"] is False
    assert mobile["decision_id"] != desktop["decision_id"]


async def test_unknown_placement_and_bad_requests(engine: Engine) -> None:
    with pytest.raises(NotFound):
        await decide(engine, "u", "nowhere")
    with pytest.raises(InvalidInput) as refused:
        await engine.decide({"user_id": "u", "placement": "home_hero", "colour": 1})
    assert refused.value.field == "colour"


async def test_frequency_cap_moves_on_to_the_default(engine: Engine, clock: ManualClock) -> None:
    spec = await engine.placements.spec()
    hero = next(p for p in spec["placements"] if p["id"] == "home_hero")
    await engine.put_one("placements", {**hero, "frequency_cap": {"max": 2, "per": "1d"}})
    await engine.put_rules(CONTEXT_RULES)
    shown = [
        (await decide(engine, "capped", "home_hero", context=MOBILE_INSTAGRAM))["variant"]["id"]
        for _ in range(4)
    ]
    assert shown == ["B", "B", "A", "A"]
    clock.advance(86_400_000)
    assert (await decide(engine, "capped", "home_hero", context=MOBILE_INSTAGRAM))["variant"][
        "id"
    ] == "B"


async def test_items_are_filtered_diverse_and_shaped_by_rules(
    engine: Engine, clock: ManualClock
) -> None:
    await engine.upsert_items(
        [
            {"item_id": "gone", "category": "toys", "in_stock": False},
            {"item_id": "bought", "category": "toys"},
        ]
    )
    await engine.ingest(
        [{"type": "purchase", "user_id": "shopper", "item_id": "bought", "timestamp": T0}]
    )
    spec = await engine.placements.spec()
    recs = next(p for p in spec["placements"] if p["id"] == "home_recs")
    await engine.put_one(
        "placements", {**recs, "k": 6, "diversity": {"max_per_category": 2}, "policy": "rules"}
    )
    await engine.put_rules(
        {
            "rules": [
                {
                    "id": "pin-gone-and-bought",
                    "trigger": {"on": "decide", "placement": "home_recs"},
                    "then": [
                        {"pin": ["kit-001"], "position": 0},
                        {"bury": "item.category == 'beauty'"},
                    ],
                }
            ]
        }
    )
    decision = await decide(engine, "shopper", "home_recs", exclude=["boo-002"])
    ids = [item["item_id"] for item in decision["items"]]
    assert ids[0] == "kit-001"
    assert len(ids) == 6
    assert not {"gone", "bought", "boo-002"} & set(ids)
    items = {i: await engine.item(i) for i in ids}
    categories = [items[i]["category"] for i in ids if items[i] is not None]
    assert max(categories.count(c) for c in set(categories)) <= 2
    assert categories[-1] == "beauty" or "beauty" not in categories[:-2]


async def test_without_personalization_consent_the_default_is_served(engine: Engine) -> None:
    await engine.put_rules(CONTEXT_RULES)
    await engine.set_consent("private", {"personalization": False})
    decision = await decide(engine, "private", "home_hero", context=MOBILE_INSTAGRAM)
    assert decision["variant"]["id"] == "A"
    assert "no personalization consent" in decision["reasons"]
    assert decision["experiment"] is None


async def test_fewer_candidates_is_opt_in_and_leaves_rules_less_to_choose_from(
    engine: Engine,
) -> None:
    """`candidates` (per placement) bounds the candidates a decision weighs: an item a rule
    would lift from far down the list is not among them any more. Unset: max(10·k, 50)."""
    wide = {"id": "wide", "k": 4, "policy": "rules", "deadline_ms": 2_000}
    narrow = {**wide, "id": "narrow", "candidates": 6}
    for placement in (wide, narrow, {**wide, "id": "long", "k": 20}):
        await engine.put_one("placements", placement)
    listed = [item["item_id"] for item in (await decide(engine, "newcomer", "long"))["items"]]
    far = listed[12]  # 13th of the popular list: among 50 candidates, not among 6
    await engine.put_rules(
        {
            "rules": [
                {
                    "id": f"lift-{placement}",
                    "trigger": {"on": "decide", "placement": placement},
                    "then": [{"boost": f"item.item_id == '{far}'", "by": 1000.0}],
                }
                for placement in ("wide", "narrow")
            ]
        }
    )
    lifted = [item["item_id"] for item in (await decide(engine, "newcomer", "wide"))["items"]]
    assert lifted[0] == far
    kept = [item["item_id"] for item in (await decide(engine, "newcomer", "narrow"))["items"]]
    assert far not in kept
    assert kept == listed[:4]


async def test_candidates_must_be_positive(engine: Engine) -> None:
    with pytest.raises(InvalidInput):
        await engine.put_one("placements", {"id": "none", "k": 4, "candidates": 0})
