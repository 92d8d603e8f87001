"""Applying log records to state: profiles, the catalog and global aggregates.

This is the only place where events change state, for live traffic, backfills,
crash recovery and replays alike. Applying is idempotent: each profile document
remembers (marks) the events it has absorbed, and a compare-and-set write makes
concurrent appliers (several processes or workers) safe. A record applied twice
changes nothing the second time.

State outside the profiles that follows the events (the live models) plugs in as
an `ApplyHook`; it sees each event once, after the profiles that absorbed it.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress, groupby
from typing import Any, Protocol

import orjson

from relevo import catalog
from relevo.catalog_cache import CHANGES_KEPT, change_entry
from relevo.clock import Clock
from relevo.errors import Unavailable
from relevo.eventlog.base import RecordKind
from relevo.events import profile_key
from relevo.features.profile import FeatureParams, ProfileState, apply_event, decode, encode
from relevo.features.windows import MINUTE_MS
from relevo.live.attributes import CatalogChange, catalog_change
from relevo.rules.effects import (
    TIMER_FIELD,
    Effects,
    fire_due_timers,
    fire_recorded,
    run_event_rules,
)
from relevo.rules.engine import RuleSet
from relevo.rules.outbox import Outbox
from relevo.rules.stats import RuleStatsRecorder
from relevo.store import keys
from relevo.store.base import Doc, DocRead, DocWrite, Store
from relevo.versions import Versioned

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
PROFILE_KINDS = frozenset({"event", "timer"})
"""Log record kinds that change a user's profile document."""
RECENT_EVENTS_KEPT = 100
RATE_BUCKET_MS = MINUTE_MS
RATE_KEPT_MS = 25 * 60 * MINUTE_MS


class ApplyHook(Protocol):
    """Something kept up to date by applied records, outside the profiles (live models).

    `observe` runs while a profile is planned, right after an event was folded into
    the state, and may return a note about it (co-visitation notes the session's
    previous items). Once the profiles are committed, `events_applied` gets the
    events that were new to them, each with its note: a redelivered event never
    reaches a hook twice. A plan redone after a write conflict observes again; only
    the notes of the plan that was written are handed back.

    Catalog upserts reach `items_upserting` before their documents are written (derived
    indexes: an upsert delivered again after a crash sees the documents it replaces
    again, so it indexes the same) and `items_applied` once the catalog generation they
    made is recorded (caches of the documents).
    """

    def observe(self, state: ProfileState, record: dict[str, Any]) -> Any: ...

    async def events_applied(self, noted: Sequence[tuple[dict[str, Any], Any]]) -> None: ...

    async def items_upserting(self, change: CatalogChange) -> None: ...

    async def items_applied(self, change: CatalogChange, generation: int) -> None: ...


# Not frozen: made per user of every batch, where a frozen dataclass's `__init__` (each
# field set through `object.__setattr__`) cost three times a plain one's.
@dataclass(slots=True)
class _UserPlan:
    user: str
    fresh: list[int]
    write: DocWrite
    effects: Effects
    notes: dict[int, tuple[Any, ...]]


@dataclass(slots=True)  # not frozen: see `_UserPlan`
class ProfileDoc:
    """A profile document as read, with the ids (of those asked about) it already absorbed,
    and the marks of those ids (computed once: checked now, recorded by the write)."""

    version: int
    value: bytes | None
    absorbed: frozenset[str]
    marks: dict[str, bytes]
    current_layout: bool = False


@dataclass(frozen=True, slots=True)
class Retention:
    profile_ttl_ms: int
    dedupe_horizon_ms: int


class Applier:
    def __init__(
        self,
        store: Store,
        params: FeatureParams,
        retention: Retention,
        clock: Clock,
        rules: Versioned[RuleSet],
        configs: Callable[[dict[str, Any]], Awaitable[None]],
        outbox: Outbox,
        stats: RuleStatsRecorder,
        hooks: Sequence[ApplyHook] = (),
        handlers: Mapping[RecordKind, Callable[[dict[str, Any]], Awaitable[None]]] | None = None,
    ) -> None:
        self.store = store
        self._deflate = getattr(store, "backend", "redis") != "embedded"  # see `encode`
        self.params = params
        self.retention = retention
        self.clock = clock
        self.rules = rules
        self.configs = configs
        self.outbox = outbox
        self.stats = stats
        self.hooks = tuple(hooks)
        #: Appliers of other record kinds, by kind (model registry changes).
        self.handlers = dict(handlers or {})
        self.errors = 0

    async def read(self, events: Sequence[dict[str, Any]]) -> dict[str, ProfileDoc]:
        """Each user's profile document, with which of these events it already absorbed."""
        by_user: dict[str, list[str]] = defaultdict(list)
        for record in events:
            by_user[profile_key(record)].append(record["event_id"])
        return await self._read(by_user)

    async def _read(self, by_user: Mapping[str, list[str]]) -> dict[str, ProfileDoc]:
        """`read` of event ids already grouped by user."""
        users = list(by_user)
        # each event id's mark, once per id (a redelivered id may come twice)
        marks = {user: {i: keys.event_mark(i) for i in by_user[user]} for user in users}
        docs = await self.store.docs_read(
            [
                DocRead(
                    keys.profile_key(user), keys.profile_marks_key(user), [*marks[user].values()]
                )
                for user in users
            ]
        )
        return {user: _absorbed(doc, marks[user]) for user, doc in zip(users, docs, strict=True)}

    async def apply(
        self,
        entries: Sequence[tuple[RecordKind, dict[str, Any]]],
        docs: dict[str, ProfileDoc] | None = None,
    ) -> None:
        """Apply records of any kind in log order (a rule change applies to what follows)."""
        for kind, run in groupby(entries, key=_family):
            records = [record for _, record in run]
            if kind == "profile":
                await self.apply_events(records, docs)
            elif kind == "item":
                await self.apply_items(records)
            elif kind in self.handlers:
                for record in records:
                    await self.handlers[kind](record)
            else:
                for record in records:
                    await self.configs(record)

    async def apply_events(
        self, events: Sequence[dict[str, Any]], docs: dict[str, ProfileDoc] | None = None
    ) -> list[bool]:
        """Apply events (and timer firings) in order; True for each one new to its profile.

        `docs` may come from an earlier `read` of the same events (it saves a round
        trip); a stale read only costs a retry.
        """
        by_user: dict[str, list[int]] = defaultdict(list)
        for index, record in enumerate(events):
            by_user[profile_key(record)].append(index)
        applied = [False] * len(events)
        notes: dict[int, tuple[Any, ...]] = {}
        if docs is None:
            docs = await self._read(_event_ids(events, by_user, by_user))
        pending = list(by_user)
        for _ in range(MAX_ATTEMPTS):
            plans = self._plan(pending, by_user, docs, events)
            await self._before_write([plan.effects for plan in plans])
            results = await self.store.docs_write([plan.write for plan in plans])
            conflicted, written = [], []
            for plan, ok in zip(plans, results, strict=True):
                if ok:
                    written.append(plan.effects)
                    notes.update(plan.notes)
                    for index in plan.fresh:
                        applied[index] = True
                else:
                    conflicted.append(plan.user)
            await self._after_write(written)
            if not conflicted:
                break
            pending = conflicted
            docs = await self._read(_event_ids(events, by_user, conflicted))
        else:
            raise Unavailable("profile updates keep conflicting; try again")
        await self._aggregate(
            [r for r, new in zip(events, applied, strict=True) if new and TIMER_FIELD not in r]
        )
        # In log order, sorted once for every hook (by index: ints compare in C's fast path)
        noted = [(events[index], notes[index]) for index in sorted(notes)]
        for position, hook in enumerate(self.hooks):
            await hook.events_applied([(event, note[position]) for event, note in noted])
        return applied

    def _plan(
        self,
        users: list[str],
        by_user: dict[str, list[int]],
        docs: dict[str, ProfileDoc],
        events: Sequence[dict[str, Any]],
    ) -> list[_UserPlan]:
        now = self.clock.now_ms()
        rules = self.rules.current
        dictionaries = self.store.dictionaries
        plans = []
        for user in users:
            doc = docs[user]
            fresh, marks, taken = [], [], set()
            for index in by_user[user]:
                event_id = events[index]["event_id"]
                if event_id not in doc.absorbed and event_id not in taken:
                    taken.add(event_id)
                    fresh.append(index)
                    mark = doc.marks.get(event_id)
                    marks.append(keys.event_mark(event_id) if mark is None else mark)
            if not fresh:
                continue
            state = (
                decode(doc.value, dictionaries)
                if doc.value is not None
                else ProfileState(user_id=user)
            )
            effects = Effects()
            notes = {}
            for index in fresh:
                self._apply_one(rules, state, events[index], effects)
                if self.hooks and TIMER_FIELD not in events[index]:
                    notes[index] = self._observe(state, events[index])
            write = DocWrite(
                key=keys.profile_key(user),
                marks_key=keys.profile_marks_key(user),
                expected_version=doc.version,
                value=encode(state, deflate=self._deflate, dictionaries=dictionaries),
                now_ms=now,
                marks=marks,
                ttl_ms=self.retention.profile_ttl_ms,
                marks_horizon_ms=self.retention.dedupe_horizon_ms,
                current_layout=doc.current_layout,
            )
            plans.append(_UserPlan(user, fresh, write, effects, notes))
        return plans

    def _apply_one(
        self, rules: RuleSet, state: ProfileState, record: dict[str, Any], effects: Effects
    ) -> None:
        # A bug in feature or rule code must not turn one odd event into a crash loop on
        # replay: count it, log it, and go on.
        try:
            if TIMER_FIELD in record:
                fire_recorded(rules, state, record, self.params, effects)
                return
            if state.timers:
                fire_due_timers(rules, state, record["timestamp"], self.params, effects)
            apply_event(state, record, self.params)
            run_event_rules(rules, state, record, self.params, effects)
        except Exception:
            self.errors += 1
            log.exception("could not apply event %s", record.get("event_id"))

    def _observe(self, state: ProfileState, record: dict[str, Any]) -> tuple[Any, ...]:
        notes = []
        for hook in self.hooks:
            try:
                notes.append(hook.observe(state, record))
            except Exception:  # a hook's bug must not stop profiles from being written
                log.exception("hook %r could not observe event %s", hook, record.get("event_id"))
                notes.append(None)
        return tuple(notes)

    async def _before_write(self, effects: Sequence[Effects]) -> None:
        """Idempotent effects that must exist if the profile write succeeds.

        Outbox messages keep their deterministic ids, so writing them before a write
        that then conflicts (and is redone) or crashes (and is replayed) stores them
        once. An armed timer is indexed before it exists; the scheduler ignores index
        entries without a matching timer.
        """
        await self.outbox.add([message for e in effects for message in e.outbox])
        armed = {member: due for e in effects for member, due in e.armed.items()}
        if armed:
            await self.store.zadd(keys.TIMERS_DUE, armed)

    async def _after_write(self, effects: Sequence[Effects]) -> None:
        disarmed = [member for e in effects for member in e.disarmed]
        if disarmed:
            await self.store.zrem(keys.TIMERS_DUE, disarmed)
        self.stats.record_all(outcome for e in effects for outcome in e.outcomes)

    async def _aggregate(self, events: Sequence[dict[str, Any]]) -> None:
        """Site-wide counts: totals and per-minute rates by type, and a feed of recent events.

        Updated after the profiles, for events new to them only, so a redelivery never
        counts twice; a crash between the two can leave these short by one batch.
        """
        if not events:
            return
        totals = Counter(record["type"] for record in events)
        per_minute = Counter(
            (record["type"], record["timestamp"] // RATE_BUCKET_MS) for record in events
        )
        await self.store.map_incr(keys.EVENT_TOTALS, totals)
        await self.store.periodic_add(
            [
                (keys.event_rate_key(kind), minute * RATE_BUCKET_MS, count)
                for (kind, minute), count in per_minute.items()
            ],
            RATE_BUCKET_MS,
            RATE_KEPT_MS,
        )
        await self.store.list_push(
            keys.RECENT_EVENTS,
            [orjson.dumps(record) for record in events[-RECENT_EVENTS_KEPT:]],
            RECENT_EVENTS_KEPT,
        )

    async def apply_items(self, items: Sequence[dict[str, Any]]) -> None:
        if not items:
            return
        # What the documents replace, read first: the hooks index what changed before the
        # documents are written, so an upsert delivered again after a crash finds the same.
        previous = await catalog.get_items(self.store, [item["item_id"] for item in items])
        change = catalog_change(items, previous)
        for hook in self.hooks:
            await hook.items_upserting(change)
        if change.items:
            await self.store.set_many(
                {keys.item_key(doc["item_id"]): orjson.dumps(doc) for doc in change.items}
            )
            # The catalog's order is when items were first listed: a stock sync moves none.
            await self.store.zadd(
                keys.ITEMS_INDEX, {doc["item_id"]: doc["created_at"] for doc in change.items}
            )
        if change.removed:
            # (Co-visitation and trending keep the id until they trim it: every answer
            # reads the candidates' documents, and an item without one is skipped.)
            await self.store.delete([keys.item_key(item_id) for item_id in change.removed])
            await self.store.zrem(keys.ITEMS_INDEX, change.removed)
        # Last, once documents and postings are written: processes that cache the catalog
        # (`relevo.catalog_cache`) see it move, and drop what these items changed.
        generation = await self.store.incr(keys.CATALOG_GENERATION)
        await self.store.list_push(
            keys.CATALOG_CHANGES,
            [change_entry(generation, change.item_ids, attributes=change.attributes_changed)],
            CHANGES_KEPT,
        )
        for hook in self.hooks:
            await hook.items_applied(change, generation)


def _family(entry: tuple[RecordKind, dict[str, Any]]) -> str:
    kind = entry[0]
    return "profile" if kind in PROFILE_KINDS else kind


def _event_ids(
    events: Sequence[dict[str, Any]], by_user: Mapping[str, list[int]], users: Iterable[str]
) -> dict[str, list[str]]:
    """The event ids of `users`, from the events' positions grouped by user."""
    return {user: [events[index]["event_id"] for index in by_user[user]] for user in users}


def _absorbed(doc: Doc, marks: dict[str, bytes]) -> ProfileDoc:
    """`doc`, read for the marks of these event ids (`doc.marked`: one answer each, in
    order). The ids found with `compress`, in C: this runs for every user of a batch."""
    found = frozenset(compress(marks, doc.marked))
    return ProfileDoc(doc.version, doc.value, found, marks, doc.current_layout)
