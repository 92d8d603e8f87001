"""The compiled rule set: event rules, decision rules, statistics and explanations."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relevo.features.profile import FeatureParams, ProfileState, ProfileView, apply_event
from relevo.rules.engine import ItemAdjustments, PinnedItem, RuleSet, RuleStats, RuleStatsBook
from relevo.rules.model import RuleSetValidationError
from relevo.rules.timers import from_epoch_ms

from .builders import T0_MS, make_event, make_profile

BURST = {
    "id": "electronics-burst",
    "trigger": {"on": "view"},
    "when": "profile.category_counts.view['electronics']['5m'] > 3",
    "then": [{"add_segment": "electronics-burst"}],
}
INSTAGRAM_MOBILE = {
    "id": "instagram-mobile",
    "priority": 10,
    "trigger": {"on": "decide", "placement": "home_hero"},
    "when": 'context.device == "mobile" && context.referrer.contains("instagram")',
    "then": [{"variant": "B"}],
}
DEFAULT_VARIANT = {
    "id": "default-variant",
    "trigger": {"on": "decide", "placement": "home_hero"},
    "then": [{"variant": "A"}],
}


def rule_set(*rules: dict[str, Any], version: str = "v1") -> RuleSet:
    return RuleSet.from_dict({"rules": list(rules)}, version)


# ---------------------------------------------------------------------------- event rules


def test_threshold_rule_fires_above_three_views_in_five_minutes() -> None:
    rules = rule_set(BURST)
    fired = rules.on_event(make_profile(electronics_5m=4), make_event("view"))
    assert fired.fired_ids == ("electronics-burst",)
    assert fired.add_segments == ("electronics-burst",)
    assert fired.version == "v1"
    assert fired.at_ms == T0_MS
    quiet = rules.on_event(make_profile(electronics_5m=3), make_event("view"))
    assert quiet.fired_ids == ()
    assert quiet.evaluated == ("electronics-burst",)
    assert quiet.add_segments == ()


def test_runtime_error_is_counted_and_the_other_rules_still_run() -> None:
    broken = {
        "id": "broken",
        "priority": 5,  # runs first, so a raise would stop BURST
        "trigger": {"on": "view"},
        "when": "profile.category_counts.view['garden']['5m'] > 0",
        "then": [{"add_segment": "gardener"}],
    }
    rules = rule_set(broken, BURST)
    book = RuleStatsBook()
    for _ in range(3):
        outcome = rules.on_event(make_profile(), make_event("view"))
        book.record(outcome)
    assert outcome.fired_ids == ("electronics-burst",)
    [err] = outcome.errors
    assert (err.rule_id, err.field, err.kind) == ("broken", "when", "missing_key")
    assert book.get("broken") == RuleStats(
        evaluations=3, fires=0, errors=3, last_error="when: missing_key: no such key: garden"
    )
    assert book.get("electronics-burst") == RuleStats(
        evaluations=3, fires=3, errors=0, last_fired_ms=T0_MS
    )


def test_recurring_outcomes_are_reused_and_counted_as_each_one() -> None:
    """Events whose conditions give the same values share one outcome pattern; the
    statistics still count every evaluation, fire and error, and the latest fire."""
    broken = {
        "id": "broken",
        "trigger": {"on": "view"},
        "when": "profile.category_counts.view['garden']['5m'] > 0",
        "then": [{"add_segment": "gardener"}],
    }
    emitting = {
        "id": "emitting",
        "trigger": {"on": "view"},
        "when": "profile.counts.view['5m'] > 2",
        "then": [{"emit": "busy"}],
    }
    rules = rule_set(broken, BURST, emitting)
    book = RuleStatsBook()
    times = [T0_MS + 1_000, T0_MS + 5_000, T0_MS + 3_000]  # not in order
    outcomes = []
    for n, at in enumerate(times):
        event = make_event("view", event_id=f"e{n}", timestamp=at)
        outcomes.append(rules.on_event(make_profile(), event))
        quiet = rules.on_event(make_profile(electronics_5m=1, counts={}), event)
        for outcome in (outcomes[-1], quiet):
            book.record(outcome)
    assert quiet.pattern is not None  # the third quiet one at least: seen before
    assert quiet.fired == ()
    assert [e.rule_id for e in quiet.errors] == ["broken", "emitting"]
    # an outbox message depends on the event: never a pattern
    assert all(o.pattern is None for o in outcomes)
    assert [o.outbox[0].message_id for o in outcomes] == [
        f"emitting:event:e{n}:0" for n in range(3)
    ]
    assert [o.at_ms for o in outcomes] == times
    without_emit = rule_set(broken, BURST)
    for at in sorted(times):  # later than the others: the last fire is a pattern's
        event = make_event("view", timestamp=at + 10_000)
        book.record(without_emit.on_event(make_profile(), event))
    assert without_emit.on_event(make_profile(), make_event("view")).pattern is not None
    assert book.get("broken") == RuleStats(
        evaluations=9, fires=0, errors=9, last_error="when: missing_key: no such key: garden"
    )
    assert book.get("electronics-burst") == RuleStats(
        evaluations=9, fires=6, errors=0, last_fired_ms=T0_MS + 15_000
    )
    assert book.get("emitting") == RuleStats(
        evaluations=6, fires=3, errors=3, last_fired_ms=T0_MS + 5_000,
        last_error="when: missing_key: no such key: view",
    )  # fmt: skip


def test_an_event_only_evaluates_the_rules_of_its_type() -> None:
    rules = [
        {"id": f"{t}-{i}", "trigger": {"on": t}, "when": "true", "then": [{"add_segment": t}]}
        for t in ("view", "click", "purchase")
        for i in range(3)
    ]
    rules.append({"id": "any", "trigger": {"on": "*"}, "then": [{"add_segment": "active"}]})
    rules.append(
        {"id": "home", "trigger": {"on": "decide", "placement": "*"}, "then": [{"variant": "A"}]}
    )
    rs = rule_set(*rules)
    book = RuleStatsBook()
    for t in ("view", "view", "click", "search"):
        book.record(rs.on_event(make_profile(), make_event(t)))
    stats = book.to_dict()
    assert {k: v["evaluations"] for k, v in stats.items()} == {
        "any": 4,
        "click-0": 1,
        "click-1": 1,
        "click-2": 1,
        "view-0": 2,
        "view-1": 2,
        "view-2": 2,
    }
    assert [r.id for r in rs.rules_for_event("search")] == ["any"]


def test_rules_run_by_priority_then_definition_order() -> None:
    rs = rule_set(
        {"id": "a", "trigger": {"on": "*"}, "then": [{"add_segment": "x"}]},
        {"id": "b", "priority": 2, "trigger": {"on": "view"}, "then": [{"remove_segment": "x"}]},
        {"id": "c", "trigger": {"on": "view"}, "then": [{"add_segment": "y"}]},
    )
    assert [r.id for r in rs.rules_for_event("view")] == ["b", "a", "c"]
    outcome = rs.on_event(make_profile(), make_event("view"))
    # The last action on a segment wins: b removes x, then a adds it back.
    assert outcome.add_segments == ("x", "y")
    assert outcome.remove_segments == ()


def test_state_actions_become_data_for_the_core() -> None:
    rs = rule_set(
        {
            "id": "tag",
            "trigger": {"on": "purchase"},
            "when": "event.value > 100.0",
            "then": [
                {"remove_segment": "browser"},
                {"set_attribute": {"name": "tier", "value": "gold"}},
                {"set_attribute": {"name": "last_category", "expr": "event.category"}},
                {"set_attribute": {"name": "broken", "expr": "event.nope"}},
                {"emit": "big_spender", "payload": {"channel": "crm"}},
            ],
        }
    )
    outcome = rs.on_event(
        make_profile(), make_event("purchase", value=120.0, category="electronics")
    )
    assert outcome.remove_segments == ("browser",)
    assert dict(outcome.attributes) == {"tier": "gold", "last_category": "electronics"}
    [err] = outcome.errors
    assert (err.rule_id, err.field) == ("tag", "then[3].set_attribute.expr")
    [msg] = outcome.outbox
    assert msg.to_dict() == {
        "message_id": "tag:event:e1:4",
        "name": "big_spender",
        "rule_id": "tag",
        "user_id": "u1",
        "payload": {"channel": "crm"},
        "at_ms": T0_MS,
        "cause": "event:e1",
    }
    again = rs.on_event(make_profile(), make_event("purchase", value=120.0, category="electronics"))
    assert again.outbox[0].message_id == msg.message_id  # replay-safe id


def test_now_is_the_event_time() -> None:
    rs = rule_set(
        {
            "id": "returning",
            "trigger": {"on": "view"},
            "when": "now - timestamp(profile.first_seen.view) >= duration('1h')",
            "then": [{"add_segment": "returning"}],
        }
    )
    early = make_event(timestamp="2026-11-26T09:59:59.999Z")
    assert rs.on_event(make_profile(), early).fired_ids == ()
    assert rs.on_event(make_profile(), make_event()).fired_ids == ("returning",)


def test_recency_on_a_profile_view_needs_no_datetime_but_other_reads_of_now_get_it() -> None:
    """Recency conditions compute in milliseconds on a profile view (no `now` value is
    built); a condition or an action that reads `now` itself still sees the event time."""
    params = FeatureParams()
    state = ProfileState(user_id="u1")
    bought = {"event_id": "p", "user_id": "u1", "type": "purchase", "timestamp": T0_MS,
              "items": [{"item_id": "i1", "quantity": 1}]}  # fmt: skip
    apply_event(state, bought, params)
    recency = {
        "id": "lapsed",
        "trigger": {"on": "view"},
        "when": "now - timestamp(profile.last_seen.purchase) > duration('1h')",
        "then": [{"add_segment": "lapsed"}],
    }
    negated = {  # `!` is a closure the code calls: it reads `now` itself
        "id": "negated",
        "trigger": {"on": "view"},
        "when": "!(now - timestamp(profile.last_seen.purchase) <= duration('1h'))",
        "then": [{"add_segment": "lapsed"}],
    }
    stamp = {
        "id": "stamp",
        "trigger": {"on": "view"},
        "then": [{"set_attribute": {"name": "at", "expr": "string(now)"}}],
    }
    only_recency = rule_set(recency)
    assert not only_recency.event_bucket("view").now_value
    for rules in (only_recency, rule_set(recency, negated), rule_set(recency, stamp)):
        for late_ms, lapsed in ((3_600_000, False), (3_600_001, True)):
            at = T0_MS + late_ms
            view = ProfileView(state, at, params)
            outcome = rules.on_event(view, make_event("view", timestamp=at))
            assert not outcome.errors, outcome.errors
            expected = {"lapsed", "negated"} & set(rules.rule_ids) if lapsed else set()
            assert set(outcome.fired_ids) - {"stamp"} == expected
            if "stamp" in rules.rule_ids:
                stamped = dt.datetime.fromisoformat(str(outcome.attributes["at"]))
                assert stamped == from_epoch_ms(at)
    assert rule_set(recency, negated).event_bucket("view").now_value
    assert rule_set(recency, stamp).event_bucket("view").now_value


def test_context_defaults_to_the_events_context_and_can_be_overridden() -> None:
    rs = rule_set(
        {
            "id": "mobile",
            "trigger": {"on": "view"},
            "when": "context.device == 'mobile'",
            "then": [{"add_segment": "mobile"}],
        }
    )
    assert rs.on_event(make_profile(), make_event()).fired_ids == ("mobile",)
    desktop = rs.on_event(make_profile(), make_event(), {"device": "desktop"})
    assert desktop.fired_ids == ()


def test_unconvertible_input_is_an_error_per_rule_not_an_exception() -> None:
    rs = rule_set(BURST)
    outcome = rs.on_event(make_profile(category_counts={"view": {1, 2}}), make_event())
    assert outcome.fired_ids == ()
    # The CEL library can't convert a set ("activation"); the fast path can't index one.
    assert [(e.rule_id, e.kind) for e in outcome.errors] in (
        [("electronics-burst", "activation")],
        [("electronics-burst", "type_error")],
    )


def test_disabled_rules_are_not_indexed() -> None:
    rs = rule_set({**BURST, "enabled": False})
    assert len(rs) == 0
    assert rs.on_event(make_profile(), make_event()).evaluated == ()


def test_invalid_rule_set_raises_validation_error() -> None:
    with pytest.raises(RuleSetValidationError, match="rule 'x': when: unknown function"):
        rule_set({**BURST, "id": "x", "when": "nope()"})


@settings(max_examples=60, deadline=None)
@given(
    counts=st.dictionaries(
        st.sampled_from(["electronics", "books", "toys"]),
        st.integers(0, 10),
        min_size=1,
    ),
    segments=st.lists(st.sampled_from(["vip", "new", "churn"]), unique=True),
)
def test_converting_only_read_fields_changes_no_result(
    counts: dict[str, int], segments: list[str]
) -> None:
    """The engine converts only the profile fields its rules read; results must not change."""
    rules = [
        {
            "id": f"{cat}-hot",
            "trigger": {"on": "view"},
            "when": f"has(profile.category_counts.view.{cat}) "
            f"&& profile.category_counts.view.{cat}['5m'] > 3",
            "then": [{"add_segment": f"{cat}-hot"}],
        }
        for cat in ("electronics", "books", "toys")
    ] + [
        {
            "id": "vip",
            "trigger": {"on": "view"},
            "when": "'vip' in profile.segments",
            "then": [{"add_segment": "vip-seen"}],
        },
        {
            "id": "whole",
            "trigger": {"on": "view"},
            "when": "size(profile) > 3 && profile.segments.size() > 1",
            "then": [{"add_segment": "many"}],
        },
    ]
    profile = make_profile(
        category_counts={"view": {c: {"5m": n} for c, n in counts.items()}}, segments=segments
    )
    pruned = rule_set(*rules[:4]).on_event(profile, make_event())
    full = rule_set(*rules).on_event(profile, make_event())  # "whole" forces the full profile
    assert pruned.fired_ids == tuple(r for r in full.fired_ids if r != "whole")
    expected = [f"{c}-hot" for c in ("electronics", "books", "toys") if counts.get(c, 0) > 3]
    assert [f for f in pruned.fired_ids if f.endswith("-hot")] == expected


# ------------------------------------------------------------------------- decision rules


@pytest.mark.parametrize(
    ("context", "variant", "rule"),
    [
        ({"device": "mobile", "referrer": "https://instagram.com/p/1"}, "B", "instagram-mobile"),
        ({"device": "desktop", "referrer": "https://instagram.com/p/1"}, "A", "default-variant"),
        ({"device": "mobile", "referrer": "https://google.com"}, "A", "default-variant"),
    ],
)
def test_context_rule_chooses_the_variant(context: dict[str, str], variant: str, rule: str) -> None:
    rs = rule_set(DEFAULT_VARIANT, INSTAGRAM_MOBILE)
    adj = rs.for_decision("home_hero", make_profile(), context)
    assert (adj.variant, adj.variant_rule) == (variant, rule)
    assert rs.for_decision("pdp_similar", make_profile(), context).variant is None


ITEMS = [
    {"item_id": "tv", "category": "electronics", "price": 900.0, "in_stock": True},
    {"item_id": "book", "category": "books", "price": 20.0, "in_stock": True},
    {"item_id": "radio", "category": "electronics", "price": 50.0, "in_stock": False},
    {"item_id": "lamp", "category": "home", "price": 30.0, "in_stock": True},
    {"item_id": "mug", "category": "home", "price": 10.0},
]
MERCH = {
    "id": "merch",
    "trigger": {"on": "decide", "placement": "*"},
    "when": "profile.affinities.electronics > 1.0",
    "then": [
        {"filter": "item.in_stock"},
        {
            "boost": "item.category in profile.affinities "
            "&& profile.affinities[item.category] > 2.0",
            "by": 3.0,
        },
        {"bury": "item.price > 500.0"},
        {"pin": ["lamp"], "position": 0},
    ],
}


def test_filter_boost_bury_and_pin_shape_the_ranking() -> None:
    rs = rule_set(MERCH)
    adj = rs.for_decision("home_hero", make_profile(), {}, ITEMS, now_ms=T0_MS)
    assert dict(adj.removed) == {"radio": "merch"}
    assert dict(adj.multipliers) == {"tv": 3.0}
    assert adj.buried == {"tv"}
    assert adj.pins == (PinnedItem("lamp", 0, "merch"),)
    [err] = adj.errors  # mug has no in_stock: counted once, item kept (on_error=keep)
    assert (err.rule_id, err.field, err.kind, err.count) == (
        "merch",
        "then[0].filter",
        "missing_key",
        1,
    )
    ranked = [("tv", 0.9), ("book", 0.5), ("radio", 0.8), ("lamp", 0.1), ("mug", 0.4)]
    assert adj.apply(ranked) == ["lamp", "book", "mug", "tv"]
    assert adj.item_rules["tv"] == ("merch",)
    assert rs.pinned_items("home_hero") == ("lamp",)


def test_filter_on_error_drop_removes_items_it_cannot_judge() -> None:
    rule = {
        "id": "strict",
        "trigger": {"on": "decide", "placement": "home"},
        "then": [{"filter": "item.in_stock", "on_error": "drop"}],
    }
    adj = rule_set(rule).for_decision("home", make_profile(), {}, ITEMS)
    assert set(adj.removed) == {"radio", "mug"}


def test_decision_rules_that_do_not_match_leave_items_alone() -> None:
    adj = rule_set(MERCH).for_decision("home", make_profile(affinities={}), {}, ITEMS)
    assert adj.applied == ()
    assert [e.kind for e in adj.errors] == ["missing_key"]  # affinities.electronics
    assert adj.apply([("tv", 1.0), ("radio", 0.5)]) == ["tv", "radio"]


def test_apply_boost_reorders_and_ties_keep_model_order() -> None:
    adj = ItemAdjustments("p", "v", None, multipliers={"c": 2.0})
    assert adj.apply([("a", 1.0), ("b", 1.0), ("c", 0.5), ("d", 0.2)]) == ["a", "b", "c", "d"]
    adj = ItemAdjustments("p", "v", None, multipliers={"c": 2.5})
    assert adj.apply([("a", 1.0), ("b", 1.0), ("c", 0.5)]) == ["c", "a", "b"]


@given(
    scores=st.lists(st.floats(0, 1), min_size=1, max_size=12),
    data=st.data(),
)
def test_apply_keeps_exactly_the_unfiltered_candidates(scores: list[float], data: Any) -> None:
    ids = [f"i{n}" for n in range(len(scores))]
    removed = data.draw(st.sets(st.sampled_from(ids)))
    buried = data.draw(st.sets(st.sampled_from(ids)))
    pinned = data.draw(st.lists(st.sampled_from(ids), unique=True, max_size=3))
    adj = ItemAdjustments(
        "p",
        "v",
        None,
        removed=dict.fromkeys(removed, "r"),
        buried=frozenset(buried),
        pins=tuple(PinnedItem(i, k, "r") for k, i in enumerate(pinned)),
    )
    out = adj.apply(list(zip(ids, scores, strict=True)))
    assert sorted(out) == sorted(set(ids) - removed)
    visible_pins = [i for i in pinned if i not in removed]
    for i in visible_pins:  # pins land on their slots when enough items precede them
        assert out.index(i) <= pinned.index(i)
    unpinned = [i for i in out if i not in visible_pins]
    first_buried = next((k for k, i in enumerate(unpinned) if i in buried), len(unpinned))
    assert all(i in buried for i in unpinned[first_buried:])


def reference_apply(adj: ItemAdjustments, ranked: list[tuple[str, float]]) -> list[str]:
    """`ItemAdjustments.apply` as first written: every step for every decision."""
    kept = [(i, s * adj.multipliers.get(i, 1.0)) for i, s in ranked if i not in adj.removed]
    kept.sort(key=lambda pair: -pair[1])
    order = [i for i, _ in kept if i not in adj.buried]
    order += [i for i, _ in kept if i in adj.buried]
    placed: dict[str, int] = {}
    for pin in adj.pins:
        if pin.item_id in set(order) and pin.item_id not in placed:
            placed[pin.item_id] = pin.position
    rest = [i for i in order if i not in placed]
    for item_id, pos in sorted(placed.items(), key=lambda kv: kv[1]):
        rest.insert(min(pos, len(rest)), item_id)
    return rest


@given(
    scores=st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, 1e-6]), min_size=1, max_size=12),
    data=st.data(),
)
def test_apply_skips_only_the_steps_with_nothing_to_do(scores: list[float], data: Any) -> None:
    ids = [f"i{n}" for n in range(len(scores))]
    some = st.sets(st.sampled_from(ids), max_size=3)
    adj = ItemAdjustments(
        "p",
        "v",
        None,
        removed=dict.fromkeys(data.draw(some), "r"),
        multipliers=dict.fromkeys(data.draw(some), data.draw(st.sampled_from([0.5, 2.0]))),
        buried=frozenset(data.draw(some)),
        pins=tuple(PinnedItem(i, k, "r") for k, i in enumerate(data.draw(some))),
    )
    ranked = list(zip(ids, scores, strict=True))
    assert adj.apply(ranked) == reference_apply(adj, ranked)


# ------------------------------------------------------------------------ stats & explain


def test_stats_round_trip_as_plain_data() -> None:
    rs = rule_set(BURST, DEFAULT_VARIANT)
    book = RuleStatsBook()
    book.record(rs.on_event(make_profile(), make_event()))
    book.record(rs.for_decision("home_hero", make_profile(), now_ms=T0_MS + 5))
    data = book.to_dict()
    assert data == {
        "default-variant": {
            "evaluations": 1,
            "fires": 1,
            "errors": 0,
            "last_fired_ms": T0_MS + 5,
            "last_error": None,
        },
        "electronics-burst": {
            "evaluations": 1,
            "fires": 1,
            "errors": 0,
            "last_fired_ms": T0_MS,
            "last_error": None,
        },
    }
    assert RuleStatsBook.from_dict(data).to_dict() == data


def test_explain_says_which_rules_matched_and_why() -> None:
    rs = rule_set(BURST, INSTAGRAM_MOBILE, DEFAULT_VARIANT)
    [burst] = rs.explain(make_profile(electronics_5m=3), make_event())
    assert (burst.rule_id, burst.matched, burst.reason) == (
        "electronics-burst",
        False,
        "condition is false",
    )
    assert burst.condition is not None
    assert [(p.source, p.value) for p in burst.condition.paths] == [
        ("profile.category_counts.view['electronics']['5m']", 3)
    ]
    insta, default = rs.explain(
        make_profile(),
        context={"device": "desktop", "referrer": "https://instagram.com"},
        placement="home_hero",
    )
    assert (insta.matched, default.matched) == (False, True)
    assert insta.condition is not None
    assert [t.value for t in insta.condition.terms] == [False, True]
    assert default.to_dict()["actions"] == ["variant"]


def test_rule_set_is_immutable_and_versioned() -> None:
    rs = rule_set(BURST, version="2026-11-26.1")
    assert rs.version == "2026-11-26.1"
    with pytest.raises(AttributeError):
        rs.extra = 1  # type: ignore[attr-defined]
    assert repr(rs) == "RuleSet(version='2026-11-26.1', rules=1)"
