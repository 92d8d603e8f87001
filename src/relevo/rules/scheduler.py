"""The timer scheduler: fires the timers of users who went quiet, on the wall clock.

Every second it reads the due index (timers due by now), checks each against the
user's profile document, and submits a *firing record* through the normal commit
path: the firing is logged (so a restart or replay can't fire it again) and
applied like an event (so it happens once per arming even when several processes
fire the same timer: the record's id is derived from the arming).

Index entries whose timer is gone (cancelled, fired, re-armed later) are dropped
once they have been stale for a while: an entry may briefly precede its timer,
because arming indexes first and writes the profile second.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from relevo.clock import Clock
from relevo.features.profile import decode
from relevo.rules.effects import firing_record, parse_timer_member
from relevo.store import keys
from relevo.store.base import DocRead, Store

STALE_GRACE_MS = 30_000
BATCH = 1_000

Submit = Callable[[list[dict[str, Any]]], Awaitable[Any]]


class TimerScheduler:
    def __init__(self, store: Store, submit: Submit, clock: Clock) -> None:
        self.store = store
        self.submit = submit
        self.clock = clock
        self._stale_since: dict[str, int] = {}

    async def run_once(self) -> int:
        """Fire what is due now; return how many firings were submitted."""
        now = self.clock.now_ms()
        due = await self.store.zrange_by_score(keys.TIMERS_DUE, float("-inf"), now, limit=BATCH)
        members = [member for member, _ in due]
        # Forget the entries that left the index meanwhile (disarmed, or dropped by another
        # process): else each one stays here for the life of the process.
        if self._stale_since:
            listed = set(members)
            self._stale_since = {m: t for m, t in self._stale_since.items() if m in listed}
        if not due:
            return 0
        targets = [parse_timer_member(member) for member in members]
        users = list(dict.fromkeys(user for user, _ in targets))
        docs = await self.store.docs_read(
            [DocRead(keys.profile_key(user), keys.profile_marks_key(user)) for user in users]
        )
        states = {
            user: decode(doc.value, self.store.dictionaries)
            for user, doc in zip(users, docs, strict=True)
            if doc.value
        }
        firings, stale, moved = [], [], {}
        for member, (user, rule_id) in zip(members, targets, strict=True):
            state = states.get(user)
            timer = None if state is None else state.timers.get(rule_id)
            if timer is not None and timer.due_at <= now:
                firings.append(firing_record(user, rule_id, timer))
                self._stale_since.pop(member, None)
            elif timer is not None:
                moved[member] = timer.due_at  # pushed back: fix the index
                self._stale_since.pop(member, None)
            elif now - self._stale_since.setdefault(member, now) >= STALE_GRACE_MS:
                stale.append(member)
                del self._stale_since[member]
        if moved:
            await self.store.zadd(keys.TIMERS_DUE, moved)
        if stale:
            await self.store.zrem(keys.TIMERS_DUE, stale)
        if firings:
            await self.submit(firings)
        return len(firings)

    async def pending(self) -> int:
        """Timers armed (for operations: the scheduler's backlog)."""
        return await self.store.zcard(keys.TIMERS_DUE)
