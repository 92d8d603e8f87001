"""A decision's generated item loop does what the general loop does, on random rules and items."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relevo.features.profile import FeatureParams, ProfileState, ProfileView, apply_event
from relevo.rules import engine
from relevo.rules.engine import ItemAdjustments, RuleSet

from .builders import T0_MS, make_profile

CONDITIONS = [
    "item.category in profile.affinities && profile.affinities[item.category] > 2.0",
    "profile.affinities[item.category] * item.price > 50.0",
    "item.price > 100.0",
    "item.rating > 3",
    "'t5' in item.tags || item.brand == 'b7'",
    "item.category == context.category",
    "item.price",
    "has(item.brand) && item.brand != 'b1'",
    "item.tags.exists(t, t == context.tag)",
    "item.tags.exists(t, t in profile.affinities)",
    "size(item.tags) > 1",
    "item.in_stock",
    "item[context.field] == 'b7'",
    "now > timestamp('2025-01-01T00:00:00Z') && item.price < 250.0",
    "context.device == 'mobile'",
]
WHEN = [None, "context.device == 'mobile'", "profile.affinities.c1 > 1.0", "context.nope"]
WHEN += ["context.device.matches('^mob')"]  # off the fast path: the scope is converted

actions = st.one_of(
    st.builds(
        lambda c, drop: {"filter": c, "on_error": "drop" if drop else "keep"},
        st.sampled_from(CONDITIONS),
        st.booleans(),
    ),
    st.builds(
        lambda c, by: {"boost": c, "by": by},
        st.sampled_from(CONDITIONS),
        st.sampled_from([0.5, 2.0, 3.0]),
    ),
    st.builds(lambda c: {"bury": c}, st.sampled_from(CONDITIONS)),
    st.builds(lambda at: {"pin": ["i1", "i9"], "position": at}, st.integers(0, 2)),
)
rules = st.lists(
    st.tuples(st.sampled_from(WHEN), st.lists(actions, min_size=1, max_size=3)),
    min_size=1,
    max_size=4,
)
items = st.lists(
    st.fixed_dictionaries(
        {
            "item_id": st.one_of(st.sampled_from([f"i{n}" for n in range(8)]), st.integers(0, 3)),
            "category": st.sampled_from(["c1", "c2", "c3", 4]),
            "price": st.one_of(st.floats(0, 400), st.integers(0, 400), st.just("cheap")),
            "tags": st.lists(st.sampled_from(["t1", "t5", "c2"]), max_size=3),
        },
        optional={
            "brand": st.sampled_from(["b1", "b7", "b9"]),
            "in_stock": st.sampled_from([True, False, 1]),
            "rating": st.integers(0, 5),
        },
    ).map(lambda item: {k: v for k, v in item.items() if not (k == "item_id" and v == 3)}),
    max_size=12,
)
contexts = st.fixed_dictionaries(
    {},
    optional={
        "device": st.sampled_from(["mobile", "desktop"]),
        "category": st.sampled_from(["c1", "c2"]),
        "tag": st.sampled_from(["t1", "t5"]),
        "field": st.sampled_from(["brand", "category", "nope"]),
    },
)


def rule_set(spec: list[tuple[str | None, list[dict[str, Any]]]]) -> RuleSet:
    body = [
        {
            "id": f"r{n}",
            "priority": n % 2,
            "trigger": {"on": "decide", "placement": "p"},
            **({} if when is None else {"when": when}),
            "then": then,
        }
        for n, (when, then) in enumerate(spec)
    ]
    return RuleSet.from_dict({"rules": body}, "v1")


def view() -> ProfileView:
    state = ProfileState(user_id="u1")
    params = FeatureParams()
    for n, category in enumerate(["c1", "c1", "c2"]):
        event = {"type": "view", "event_id": f"e{n}", "timestamp": T0_MS - 60_000 * n,
                 "item_id": f"i{n}", "category": category}  # fmt: skip
        apply_event(state, event, params)
    return ProfileView(state, T0_MS, params)


def decide(rules: RuleSet, profile: Any, context: Any, candidates: Any) -> ItemAdjustments:
    return rules.for_decision("p", profile, context, candidates, now_ms=T0_MS)


@settings(max_examples=400, deadline=None)
@given(spec=rules, candidates=items, context=contexts, lazy=st.booleans())
def test_the_generated_loop_does_what_the_general_loop_does(
    spec: list[tuple[str | None, list[dict[str, Any]]]],
    candidates: list[dict[str, Any]],
    context: dict[str, Any],
    lazy: bool,
) -> None:
    profile = view() if lazy else make_profile(affinities={"c1": 3.5, "c2": 0.4})
    generated = decide(rule_set(spec), profile, context, candidates)
    general = rule_set(spec)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "_item_loop", lambda bucket, per_item: None)
        expected = decide(general, profile, context, candidates)
    assert generated == expected
    assert list(generated.removed.items()) == list(expected.removed.items())
    assert list(generated.multipliers.items()) == list(expected.multipliers.items())
    assert list(generated.item_rules.items()) == list(expected.item_rules.items())


def test_the_loop_is_generated_once_per_set_of_rules_that_hold() -> None:
    rules = rule_set(
        [
            ("context.device == 'mobile'", [{"boost": "item.price > 100.0", "by": 2.0}]),
            (None, [{"filter": "item.category != 'c3'"}, {"bury": "item.price > 300.0"}]),
        ]
    )
    candidates = [{"item_id": "a", "category": "c1", "price": 150.0}]
    for device in ("mobile", "desktop", "mobile"):
        adjustments = decide(rules, make_profile(), {"device": device}, candidates)
    assert dict(adjustments.multipliers) == {"a": 2.0}
    [bucket] = rules._decide_index.values()
    assert len(bucket.item_loops) == 2  # mobile (three actions) and desktop (two)
    assert all(loop is not None for loop in bucket.item_loops.values())


class Counting(Mapping[str, float]):
    """A lazy map (like the profile's affinities) that counts its reads."""

    def __init__(self, data: dict[str, float]) -> None:
        self.data, self.reads = data, 0

    def __getitem__(self, key: str) -> float:
        self.reads += 1
        return self.data[key]

    def __contains__(self, key: object) -> bool:
        self.reads += 1
        return key in self.data

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def test_a_map_read_before_the_loop_answers_each_key_once() -> None:
    rules = rule_set([(None, [{"boost": CONDITIONS[0], "by": 2.0}])])
    affinities = Counting({"c1": 3.0, "c2": 1.0})
    candidates = [{"item_id": f"i{n}", "category": f"c{n % 3}"} for n in range(30)]
    adjustments = decide(rules, {"affinities": affinities}, {}, candidates)
    assert list(adjustments.multipliers) == [f"i{n}" for n in range(30) if n % 3 == 1]
    # `in` for each of three categories, `[]` (`in`, then the read) for the two it holds
    assert affinities.reads == 3 + 2 * 2  # per item: 30 + 2 * 20
