"""Feature flags: targeting, rollouts, types, over HTTP."""

from __future__ import annotations

import pytest

from relevo.engine import Engine
from relevo.errors import InvalidInput

FLAGS = {
    "flags": [
        {
            "key": "new_checkout",
            "default": False,
            "rules": [{"when": "context.country == 'FR'", "value": True}],
            "rollout": {"percentage": 30, "value": True},
        },
        {
            "key": "banner",
            "type": "string",
            "default": "blue",
            "rules": [{"when": "'vip' in profile.segments", "value": "gold"}],
        },
        {
            "key": "off",
            "default": False,
            "enabled": False,
            "rollout": {"percentage": 100, "value": True},
        },
    ]
}


async def test_targeting_then_rollout_then_default(engine: Engine) -> None:
    await engine.put_config("flags", FLAGS)
    french = await engine.evaluate_flags("someone", {"country": "FR"})
    assert french["flags"]["new_checkout"] is True
    assert french["reasons"]["new_checkout"] == "rule:0"
    assert french["flags"]["banner"] == "blue"
    assert french["flags"]["off"] is False
    assert french["reasons"]["off"] == "disabled"
    others = [await engine.evaluate_flags(f"user-{n}", {"country": "DE"}) for n in range(1000)]
    rolled = sum(found["reasons"]["new_checkout"] == "rollout" for found in others)
    assert 250 < rolled < 350
    again = await engine.evaluate_flags("user-7", {"country": "DE"})
    assert again["flags"] == others[7]["flags"]  # deterministic


async def test_flags_see_the_profile(engine: Engine) -> None:
    await engine.put_config("flags", FLAGS)
    await engine.put_rules(
        {"rules": [{"id": "vip", "trigger": {"on": "purchase"}, "then": [{"add_segment": "vip"}]}]}
    )
    await engine.ingest([{"type": "purchase", "user_id": "big", "value": 10.0}])
    assert (await engine.evaluate_flags("big", {}))["flags"]["banner"] == "gold"


@pytest.mark.parametrize(
    "flag",
    [
        {"key": "x", "type": "bool", "default": "yes"},
        {"key": "x", "rules": [{"when": "context.country ==", "value": True}]},
        {"key": "x", "rollout": {"percentage": 120, "value": True}},
    ],
)
async def test_invalid_flags_are_refused(engine: Engine, flag: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        await engine.put_config("flags", {"flags": [flag]})
