"""The timer scheduler: fires the timers of users who went quiet, on the wall clock.

Every second it reads the due index (timers due by now), checks each against the
user's profile document, and submits a *firing record* through the normal commit
path: the firing is logged (so a restart or replay can't fire it again) and
applied like an event (so it happens once per arming even when several processes
fire the same timer: the record's id is derived from the arming).

Every API and worker process runs a scheduler, but one at a time does the work: a
round with timers due needs the lease `timers:lease` (a round with none takes nothing
and writes nothing). Without it each process read the same head of
the index, decoded the same profiles and submitted the same firings every second
(three times the work with one API and two workers, while a backlog of due timers
drained; more with every replica), for no gain: they all read the same 1,000
entries. A holder that stops hands the lease back; one that dies loses it after
`LEASE_MS`, so its timers fire at most that much later, from another process.

Index entries whose timer is gone (cancelled, fired, re-armed later) are dropped
once they have been stale for a while: an entry may briefly precede its timer,
because arming indexes first and writes the profile second.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

from relevo.clock import Clock
from relevo.features.profile import decode
from relevo.rules.effects import firing_record, parse_timer_member
from relevo.store import keys
from relevo.store.base import DocRead, Store

STALE_GRACE_MS = 30_000
BATCH = 1_000
LEASE = "timers:lease"
LEASE_MS = 5_000
"""Renewed every round (each second): a dead holder's timers wait at most this long."""

Submit = Callable[[list[dict[str, Any]]], Awaitable[Any]]


class TimerScheduler:
    def __init__(self, store: Store, submit: Submit, clock: Clock) -> None:
        self.store = store
        self.submit = submit
        self.clock = clock
        self.owner = f"{os.getpid()}-{os.urandom(4).hex()}"
        self._stale_since: dict[str, int] = {}

    async def run_once(self) -> int:
        """Fire what is due now; return how many firings were submitted (0 as well when
        another process holds the lease: it fires them)."""
        now = self.clock.now_ms()
        # Nothing due (the usual case): no lease taken, nothing written. Due timers but the
        # lease elsewhere: the holder fires them and watches the stale entries.
        if not await self.store.zrange_by_score(
            keys.TIMERS_DUE, float("-inf"), now, limit=1
        ) or not await self.store.lease(LEASE, self.owner, LEASE_MS):
            self._stale_since.clear()
            return 0
        due = await self.store.zrange_by_score(keys.TIMERS_DUE, float("-inf"), now, limit=BATCH)
        members = [member for member, _ in due]
        # Forget the entries that left the index meanwhile (disarmed, or dropped by another
        # process): else each one stays here for the life of the process.
        if self._stale_since:
            listed = set(members)
            self._stale_since = {m: t for m, t in self._stale_since.items() if m in listed}
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

    async def release(self) -> None:
        """Hand the lease over now (on stop), so another process fires without waiting."""
        await self.store.release(LEASE, self.owner)

    async def pending(self) -> int:
        """Timers armed (for operations: the scheduler's backlog)."""
        return await self.store.zcard(keys.TIMERS_DUE)
