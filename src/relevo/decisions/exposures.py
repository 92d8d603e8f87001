"""Recording what was shown, and crediting what followed.

**Exposure.** A returned decision is recorded: the decision itself (kept 7 days
for attribution), the experiment arm's exposure (and its user, the first time the
user is assigned: sticky assignments live with the user's keys), the variant's
exposure, the decision rules that shaped it, and the frequency-cap counter.

**Outcome.** When a `click` (or add_to_cart, purchase) carrying a ``decision_id``
is applied for the first time, the decision's arm, variant and rules are credited
one click (at most one per decision, so CTR stays a proportion). A purchase by a
user assigned to experiments credits each arm one conversion (the user's first)
and its revenue (per user, so revenue per user can be tested). Outcomes are
credited after the profile write, for newly applied events only: redelivery never
counts twice (a crash in between can miss one).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from relevo.clock import Clock
from relevo.decisions.pipeline import Decision
from relevo.events import profile_key
from relevo.live.attributes import CatalogChange
from relevo.store import keys, sharded
from relevo.store.base import MapIncr, Store

DECISION_TTL_MS = 7 * 86_400_000
ASSIGNMENT_TTL_MS = 90 * 86_400_000
CLICKS = frozenset({"click", "add_to_cart"})


class Exposures:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        #: Told of each decision's first click or purchase: (placement, decided at, outcome).
        #: Monitoring counts them for the placement's CTR and conversion.
        self.credited: Callable[[str, int, str], None] | None = None

    async def record(self, decision: Decision) -> None:
        """Write down a decision that was returned (fallbacks are not recorded).

        The decision and all its counters go in one `Store.write_many` (one round trip):
        only a user's first assignment to an experiment reads before (whether it is new).
        """
        if decision.fallback:
            return
        shown = decision.variant.id if decision.variant is not None else None
        increments: list[MapIncr] = []
        if decision.experiment is not None and decision.arm is not None:
            counts = {f"{decision.arm}|exposures": 1}
            if decision.new_assignment or decision.experiment.allocation == "thompson":
                marker = decision.experiment.id
                if decision.experiment.allocation == "thompson":
                    marker += "|" + decision.arm  # bandits count users per arm they saw
                (added,) = await self.store.map_add(
                    keys.assignments_key(decision.user_id),
                    {marker: decision.arm.encode()},
                    ttl_ms=ASSIGNMENT_TTL_MS,
                )
                if added:
                    counts[f"{decision.arm}|users"] = 1
            key = keys.experiment_stats_key(decision.experiment.id)
            increments.append(sharded.increment(key, decision.user_id, counts))
        if shown is not None:
            key = keys.placement_stats_key(decision.placement.id)
            increments.append(sharded.increment(key, decision.user_id, {f"{shown}|exposures": 1}))
        if decision.rules:
            counts = {f"{rule}|exposures": 1 for rule in decision.rules}
            increments.append(sharded.increment(keys.RULE_ENGAGEMENT, decision.user_id, counts))
        if decision.cap_fields:
            cap = decision.placement.frequency_cap
            increments.append(
                MapIncr(
                    keys.exposures_key(decision.user_id),
                    dict.fromkeys(decision.cap_fields, 1),
                    ttl_ms=None if cap is None else 2 * cap.per_ms,
                )
            )
        document = {
            "user_id": decision.user_id,
            "placement": decision.placement.id,
            "experiment": None if decision.experiment is None else decision.experiment.id,
            "arm": decision.arm,
            "variant": shown,
            "rules": decision.rules,
            "at": decision.at_ms,
        }
        await self.store.write_many(
            {keys.decision_key(decision.decision_id): orjson.dumps(document)},
            ttl_ms=DECISION_TTL_MS,
            increments=increments,
        )

    # -- as an `ApplyHook`: told about newly applied events ---------------------------------
    def observe(self, state: Any, record: dict[str, Any]) -> None:
        return None

    async def events_applied(self, noted: Sequence[tuple[dict[str, Any], Any]]) -> None:
        await self.credit([event for event, _ in noted])

    async def items_upserting(self, change: CatalogChange) -> None:
        return None

    async def items_applied(self, change: CatalogChange, generation: int) -> None:
        return None

    async def credit(self, events: Sequence[dict[str, Any]]) -> None:
        """Credit decisions and experiments with newly applied outcome events."""
        attributed = [
            e for e in events if e.get("decision_id") and e["type"] in CLICKS | {"purchase"}
        ]
        purchases = [e for e in events if e["type"] == "purchase"]
        if attributed:
            await self._credit_decisions(attributed)
        if purchases:
            await self._credit_conversions(purchases)

    async def _credit_decisions(self, events: Sequence[dict[str, Any]]) -> None:
        ids = list(dict.fromkeys(e["decision_id"] for e in events))
        blobs = await self.store.get_many([keys.decision_key(i) for i in ids])
        decisions = {i: orjson.loads(b) for i, b in zip(ids, blobs, strict=True) if b is not None}
        for event in events:
            decision = decisions.get(event["decision_id"])
            if decision is None or decision["user_id"] != profile_key(event):
                continue  # unknown, expired, or someone else's decision
            outcome = "click" if event["type"] in CLICKS else "purchase"
            (first,) = await self.store.map_add(
                keys.decision_key(event["decision_id"]) + ":outcomes",
                {outcome: b"1"},
                ttl_ms=DECISION_TTL_MS,
            )
            if not first:
                continue
            if self.credited is not None:
                self.credited(decision["placement"], int(decision["at"]), outcome)
            counter = "clicks" if outcome == "click" else "conversions"
            if decision["experiment"] is not None and outcome == "click":
                await sharded.incr(
                    self.store,
                    keys.experiment_stats_key(decision["experiment"]),
                    decision["user_id"],
                    {f"{decision['arm']}|clicks": 1},
                )
            if decision["variant"] is not None:
                await sharded.incr(
                    self.store,
                    keys.placement_stats_key(decision["placement"]),
                    decision["user_id"],
                    {f"{decision['variant']}|{counter}": 1},
                )
            if decision["rules"]:
                await sharded.incr(
                    self.store,
                    keys.RULE_ENGAGEMENT,
                    decision["user_id"],
                    {f"{rule}|{counter}": 1 for rule in decision["rules"]},
                )

    async def _credit_conversions(self, purchases: Sequence[dict[str, Any]]) -> None:
        by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for event in purchases:
            by_user[profile_key(event)].append(event)
        everyone = await self.store.map_all_many([keys.assignments_key(u) for u in by_user])
        for (user, bought), assigned in zip(by_user.items(), everyone, strict=True):
            arms = {
                name: value.decode()
                for name, value in assigned.items()
                if "|" not in name  # fixed allocation: experiment -> arm
            }
            for experiment, arm in arms.items():
                cents = sum(_cents(event) for event in bought)
                markers = await self.store.map_add(
                    keys.assignments_key(user), {f"{experiment}|converted": b"1"}
                )
                totals = await self.store.map_incr(
                    keys.assignments_key(user), {f"{experiment}|revenue_cents": cents}
                )
                new_total = totals[f"{experiment}|revenue_cents"]
                old_total = new_total - cents
                counts = {
                    f"{arm}|revenue_cents": cents,
                    f"{arm}|revenue_sq": new_total * new_total - old_total * old_total,
                }
                if markers[0]:
                    counts[f"{arm}|conversions"] = 1
                await sharded.incr(self.store, keys.experiment_stats_key(experiment), user, counts)


def _cents(event: dict[str, Any]) -> int:
    value = event.get("value")
    if value is None:
        value = sum(
            line.get("quantity", 1) * line["price"]
            for line in event.get("items", ())
            if line.get("price") is not None
        )
    return round(float(value) * 100)
