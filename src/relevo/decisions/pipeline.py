"""The decision pipeline: one answer for one placement and one user, always.

    rules  →  experiment arm  →  model / propensity  →  default

A decision is computed from reads only (the profile, the user's experiment
assignments and exposure counts, candidate items) under a deadline (50 ms by
default, per placement). If anything fails or is late, the answer is the
placement's fallback (its default variant, or its default items, or the last
good items) with ``fallback: true``, and HTTP 200: a page load is never failed.
A computation that missed the deadline runs to its end in the background but
writes nothing. Only the answer returned is recorded (`relevo.decisions.exposures`).

Opted-out users (no personalization consent) get the non-personalized default and
are kept out of experiments.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from relevo.catalog_cache import CatalogCache
from relevo.clock import Clock
from relevo.consent import personalization_allowed
from relevo.decisions.experiments import Experiment, ExperimentArm, Experiments
from relevo.decisions.placements import Placement, Placements, Variant
from relevo.decisions.stats import ArmCounters, StatsCache
from relevo.experiments.assignment import assign
from relevo.experiments.bandits import BanditState, BetaArm, choose
from relevo.features.profile import FeatureParams, ProfileState, ProfileView, decode
from relevo.rules.engine import RuleSet
from relevo.serving.recommend import PROFILE_READ
from relevo.store import keys
from relevo.store.base import DocRead, Store
from relevo.versions import Versioned

log = logging.getLogger(__name__)

Scored = list[tuple[str, float, list[str]]]
ItemSource = Callable[[str | None, int, Mapping[str, Any]], Awaitable[Scored]]
"""(user id or None for non-personalized, how many, context) → (item id, score, reasons)."""


@dataclass(slots=True)
class DecideRequest:
    user_id: str
    placement: str
    context: dict[str, Any] = field(default_factory=dict)
    k: int | None = None
    exclude: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Decision:
    decision_id: str
    placement: Placement
    user_id: str
    at_ms: int
    variant: Variant | None = None
    items: list[dict[str, Any]] | None = None
    reasons: list[str] = field(default_factory=list)
    policy: str = "default"
    experiment: Experiment | None = None
    arm: str | None = None
    new_assignment: bool = False
    rules: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    fallback: bool = False
    fallback_reason: str | None = None
    cap_fields: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "decision_id": self.decision_id,
            "placement": self.placement.id,
        }
        if self.placement.kind == "variants":
            variant = self.variant
            body["variant"] = (
                None
                if variant is None
                else {"id": variant.id, "content": variant.content, "tags": variant.tags}
            )
        else:
            body["items"] = self.items or []
        body.update(
            {
                "reasons": self.reasons,
                "policy": self.policy,
                "arm": self.arm,
                "experiment": None if self.experiment is None else self.experiment.id,
                "rules": self.rules,
                "versions": self.versions,
                "fallback": self.fallback,
            }
        )
        if self.fallback_reason is not None:
            body["fallback_reason"] = self.fallback_reason
        return body


def new_decision_id(now_ms: int) -> str:
    """Time-ordered and unique: milliseconds, then 64 random bits (hex)."""
    return f"{now_ms:012x}{os.urandom(8).hex()}"


class DecisionPipeline:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        params: FeatureParams,
        *,
        placements: Versioned[Placements],
        experiments: Versioned[Experiments],
        rules: Versioned[RuleSet],
        consent_required: bool,
        personalized: ItemSource,
        popular: ItemSource,
        model_version: Callable[[], str | None],
        catalog: CatalogCache | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.params = params
        self.placements = placements
        self.experiments = experiments
        self.rules = rules
        self.consent_required = consent_required
        self.personalized = personalized
        self.popular = popular
        self.model_version = model_version
        #: The item documents (off: read from the store each time).
        self.catalog = catalog or CatalogCache(store, clock, 0)
        self.stats = StatsCache(store, clock)
        self.last_items: dict[str, list[dict[str, Any]]] = {}
        self.rng = np.random.default_rng()
        self.fallbacks = 0
        self._late: set[asyncio.Future[None]] = set()

    # -- the door -------------------------------------------------------------------------
    async def decide(self, request: DecideRequest, placement: Placement) -> Decision:
        """Compute under the placement's deadline; the fallback when it fails or is late."""
        now = self.clock.now_ms()
        decision = Decision(new_decision_id(now), placement, request.user_id, now)
        decision.versions = self._versions()
        work = asyncio.ensure_future(self._compute(request, decision))
        done = await _done_within(work, placement.deadline_ms / 1000)
        if done and work.exception() is None:
            return decision
        if done:
            error = work.exception()
            reason = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
            log.warning("decision for %s failed: %s", placement.id, reason)
        else:
            self._late.add(work)
            work.add_done_callback(self._forget)
            reason = f"deadline of {placement.deadline_ms} ms exceeded"
        return self._fallback(request, placement, reason)

    def _forget(self, task: asyncio.Future[None]) -> None:
        """A computation that missed its deadline: its result (or error) is not needed."""
        self._late.discard(task)
        if not task.cancelled():
            task.exception()

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Let late computations finish (they hold store connections) before closing."""
        if self._late:
            await asyncio.wait(set(self._late), timeout=timeout_s)

    def _versions(self) -> dict[str, str]:
        versions = {
            "rules": self.rules.version,
            "placements": self.placements.version,
            "experiments": self.experiments.version,
        }
        model = self.model_version()
        if model is not None:
            versions["model"] = model
        return versions

    def _fallback(self, request: DecideRequest, placement: Placement, reason: str) -> Decision:
        """The answer that needs nothing but memory: defaults, or the last good items."""
        self.fallbacks += 1
        now = self.clock.now_ms()
        decision = Decision(new_decision_id(now), placement, request.user_id, now)
        decision.versions = self._versions()
        decision.fallback, decision.fallback_reason = True, reason
        decision.policy = "default"
        if placement.kind == "variants":
            decision.variant = placement.variant(placement.default or "")
            decision.reasons = ["fallback: default variant"]
        else:
            k = request.k or placement.k
            defaults = [
                {"item_id": i, "score": 0.0, "reasons": ["default"]}
                for i in placement.default_items
            ]
            decision.items = (defaults or self.last_items.get(placement.id, []))[:k]
            decision.reasons = ["fallback: default items"]
        return decision

    # -- computing (reads only) -------------------------------------------------------------
    async def _compute(self, request: DecideRequest, decision: Decision) -> None:
        placement = decision.placement
        version, state = await self._read(request.user_id)
        PROFILE_READ.set((request.user_id, version, state))  # this task's: read it once
        consent = {} if state is None else state.consent
        allowed = personalization_allowed(consent, self.consent_required)
        profile = (
            ProfileView(state, decision.at_ms, self.params)
            if state is not None and allowed
            else ProfileView(ProfileState(user_id=request.user_id), decision.at_ms, self.params)
        )
        policy: str = placement.policy
        forced_variant: str | None = None
        if not allowed:
            policy = "default"
            decision.reasons.append("no personalization consent")
        else:
            experiment = self.experiments.current.on(placement.id)
            if experiment is not None:
                arm = await self._arm(experiment, request.user_id, decision)
                if arm is None:
                    policy = "default"
                    decision.reasons.append(f"held out of experiment {experiment.id}")
                else:
                    policy, forced_variant = arm.policy, arm.variant
                    decision.reasons.append(f"experiment {experiment.id}: arm {arm.name}")
        decision.policy = policy
        if placement.kind == "variants":
            await self._choose_variant(request, decision, profile, policy, forced_variant)
        else:
            await self._choose_items(request, decision, profile, state if allowed else None, policy)

    async def _state(self, user_id: str) -> ProfileState | None:
        return (await self._read(user_id))[1]

    async def _read(self, user_id: str) -> tuple[int, ProfileState | None]:
        """The user's profile and its document version."""
        (doc,) = await self.store.docs_read(
            [DocRead(keys.profile_key(user_id), keys.profile_marks_key(user_id))]
        )
        return doc.version, None if doc.value is None else decode(
            doc.value, self.store.dictionaries
        )

    async def _arm(
        self, experiment: Experiment, user_id: str, decision: Decision
    ) -> ExperimentArm | None:
        decision.experiment = experiment
        if experiment.allocation == "thompson" and user_id not in experiment.forced:
            counters = await self.stats.experiment(experiment.id)
            state = BanditState(
                arms={
                    arm.name: _beta(counters.get(arm.name, ArmCounters()), experiment.kpi)
                    for arm in experiment.arms
                },
                min_share=experiment.min_exploration,
            )
            chosen = choose(state, self.rng)
            decision.arm = chosen
            return experiment.arm(chosen)
        (stored,) = await self.store.map_get(keys.assignments_key(user_id), [experiment.id])
        name: str | None = None if stored is None else stored.decode()
        if name is None or experiment.arm(name) is None or user_id in experiment.forced:
            name = assign(self.experiments.current.assignment[experiment.id], user_id).arm
            decision.new_assignment = name is not None
        decision.arm = name
        return None if name is None else experiment.arm(name)

    async def _choose_variant(
        self,
        request: DecideRequest,
        decision: Decision,
        profile: ProfileView,
        policy: str,
        forced: str | None,
    ) -> None:
        placement = decision.placement
        capped = await self._capped(request.user_id, placement)
        allowed = [v for v in placement.variants if v.id not in capped]
        chosen: Variant | None = None
        if forced is not None:
            chosen = placement.variant(forced)
            decision.reasons.append(f"arm shows variant {forced}")
        if chosen is None and policy in ("rules", "auto"):
            adjustments = self.rules.current.for_decision(
                placement.id, profile, request.context, (), now_ms=decision.at_ms
            )
            decision.rules = list(adjustments.applied)
            if adjustments.variant is not None and adjustments.variant not in capped:
                chosen = placement.variant(adjustments.variant)
                decision.reasons.append(
                    f"rule {adjustments.variant_rule} chose {adjustments.variant}"
                )
        if chosen is None and policy in ("ml", "auto") and len(allowed) > 1:
            chosen = await self._learned_variant(placement, allowed)
            decision.reasons.append(f"learned click rates chose {chosen.id}")
        if chosen is None:
            chosen = placement.variant(placement.default or "")
            decision.reasons.append("default variant")
        if capped:
            decision.reasons.append(f"frequency cap reached for {sorted(capped)}")
        decision.variant = chosen
        if placement.frequency_cap is not None and chosen is not None:
            decision.cap_fields = [_cap_field(placement, chosen.id, decision.at_ms)]

    async def _learned_variant(self, placement: Placement, variants: list[Variant]) -> Variant:
        """Thompson sampling over the variants' observed click rates (no training needed)."""
        counters = await self.stats.placement(placement.id)
        state = BanditState(
            arms={v.id: _beta(counters.get(v.id, ArmCounters()), "click") for v in variants},
            min_share=min(0.05, 1 / len(variants)),
        )
        chosen = choose(state, self.rng)
        return next(v for v in variants if v.id == chosen)

    async def _capped(self, user_id: str, placement: Placement) -> set[str]:
        cap = placement.frequency_cap
        if cap is None:
            return set()
        now = self.clock.now_ms()
        fields = [_cap_field(placement, v.id, now) for v in placement.variants]
        counts = await self.store.map_get(keys.exposures_key(user_id), fields)
        return {
            v.id
            for v, count in zip(placement.variants, counts, strict=True)
            if count is not None and int(count) >= cap.max and v.id != placement.default
        }

    async def _choose_items(
        self,
        request: DecideRequest,
        decision: Decision,
        profile: ProfileView,
        state: ProfileState | None,
        policy: str,
    ) -> None:
        placement = decision.placement
        k = request.k or placement.k
        wanted = placement.candidates_for(k)
        if policy in ("ml", "auto") and state is not None:
            scored = await self.personalized(request.user_id, wanted, request.context)
            decision.reasons.append("personalized recommendations")
        else:
            scored = await self.popular(None, wanted, request.context)
            decision.reasons.append("popular items")
        known = {item_id for item_id, _, _ in scored}
        scored += [(i, 1e-6, ["default"]) for i in placement.default_items if i not in known]
        rules = self.rules.current if policy in ("rules", "auto") else None
        if rules is not None:
            pinned = [i for i in rules.pinned_items(placement.id) if i not in known]
            scored += [(i, 1e-6, ["pinned"]) for i in pinned]
        items = await self.catalog.items([item_id for item_id, _, _ in scored])
        excluded = _excluded(placement, state, request.exclude)
        candidates = _passing(placement, scored, items, excluded)
        order = [item_id for item_id, _, _ in candidates]
        rule_hits: dict[str, tuple[str, ...]] = {}
        if rules is not None:
            adjustments = rules.for_decision(
                placement.id,
                profile,
                request.context,
                [items[i] for i in order],
                now_ms=decision.at_ms,
            )
            decision.rules = list(adjustments.applied)
            rule_hits = dict(adjustments.item_rules)
            order = adjustments.apply([(item_id, score) for item_id, score, _ in candidates])
        chosen = _diverse(order, items, placement, k)
        why = {item_id: reasons for item_id, _, reasons in candidates}
        scores = {item_id: score for item_id, score, _ in candidates}
        decision.items = [
            {
                "item_id": item_id,
                "score": round(scores.get(item_id, 0.0), 6),
                "reasons": [
                    *why.get(item_id, []),
                    *(f"rule:{r}" for r in rule_hits.get(item_id, ())),
                ],
            }
            for item_id in chosen
        ]
        if decision.items:
            self.last_items[placement.id] = decision.items


async def _done_within(work: asyncio.Future[None], timeout_s: float) -> bool:
    """Whether `work` is done within `timeout_s` (it runs on either way): what
    ``asyncio.wait({work}, timeout=...)`` tells, without the sets and the checks of a
    general wait, which every decision paid for its one task."""
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    timer = asyncio.get_running_loop().call_later(timeout_s, wake)
    work.add_done_callback(wake)
    try:
        await waiter
    finally:
        timer.cancel()
        work.remove_done_callback(wake)
    return work.done()


def _beta(counters: ArmCounters, kpi: str) -> BetaArm:
    if kpi == "click":
        return BetaArm(
            successes=counters.clicks, failures=max(0, counters.exposures - counters.clicks)
        )
    return BetaArm(
        successes=counters.conversions, failures=max(0, counters.users - counters.conversions)
    )


def _cap_field(placement: Placement, variant_id: str, now_ms: int) -> str:
    assert placement.frequency_cap is not None
    window = now_ms // placement.frequency_cap.per_ms
    return f"{placement.id}|{variant_id}|{window}"


def _excluded(placement: Placement, state: ProfileState | None, asked: Sequence[str]) -> set[str]:
    excluded = set(asked)
    if state is None:
        return excluded
    filters = placement.filters
    if filters.exclude_purchased:
        excluded.update(entry.item_id for entry in state.purchased)
    if filters.exclude_seen:
        excluded.update(entry.item_id for entry in state.recent_items)
    if filters.exclude_in_cart:
        excluded.update(state.cart)
    return excluded


def _passing(
    placement: Placement,
    scored: Scored,
    items: Mapping[str, Mapping[str, Any]],
    excluded: set[str],
) -> Scored:
    """The candidates in the catalog, not excluded, that pass the placement's filters.

    One loop with the filters read once: it runs for every candidate of a decision.
    """
    filters = placement.filters
    in_stock, low, high = filters.in_stock, filters.min_price, filters.max_price
    only, never = filters.categories, filters.exclude_categories
    kept: Scored = []
    for entry in scored:
        item = items.get(entry[0])
        if item is None or entry[0] in excluded:
            continue
        if in_stock and not item.get("in_stock", True):
            continue
        price = item.get("price")
        if price is not None and (
            (low is not None and price < low) or (high is not None and price > high)
        ):
            continue
        category = item.get("category")
        if (only is not None and category not in only) or category in never:
            continue
        kept.append(entry)
    return kept


def _diverse(
    order: list[str], items: Mapping[str, Mapping[str, Any]], placement: Placement, k: int
) -> list[str]:
    limit = None if placement.diversity is None else placement.diversity.max_per_category
    chosen: list[str] = []
    per_category: dict[Any, int] = {}
    for item_id in order:
        category = items[item_id].get("category")
        if limit is not None and per_category.get(category, 0) >= limit:
            continue
        per_category[category] = per_category.get(category, 0) + 1
        chosen.append(item_id)
        if len(chosen) == k:
            break
    return chosen
