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

A firing the log accepted stays in the index until a worker applies it (the
application disarms the timer). The holder does not submit it again in the meantime:
it did every second, while a backlog of events kept the workers behind (in
`bench.load`'s history, 8,450 firings submitted for 4,702 timers, each round decoding
the same 1,000 profiles again). It submits it again only if the entry is still there
`RESUBMIT_MS` later (the log lost it: a Redis crash under ``appendfsync everysec``),
and reads past the entries it waits for, so the timers behind them fire meanwhile.
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
RESUBMIT_MS = 30_000
"""How long a submitted firing waits to be applied before it is submitted again."""
MAX_WAITING = 10 * BATCH
"""Submitted firings read past at most (beyond, they are submitted again each round)."""

Submit = Callable[[list[dict[str, Any]]], Awaitable[Any]]


class TimerScheduler:
    def __init__(self, store: Store, submit: Submit, clock: Clock) -> None:
        self.store = store
        self.submit = submit
        self.clock = clock
        self.owner = f"{os.getpid()}-{os.urandom(4).hex()}"
        self._stale_since: dict[str, int] = {}
        #: (index member, due time) → when its firing was submitted (while it waits in the
        #: log; a re-arming moves the due time, so it is another key).
        self._submitted: dict[tuple[str, float], int] = {}

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
            self._submitted.clear()
            return 0
        due = await self.store.zrange_by_score(
            keys.TIMERS_DUE,
            float("-inf"),
            now,
            limit=BATCH + min(len(self._submitted), MAX_WAITING),
        )
        # Forget the entries that left the index meanwhile (applied, disarmed, or dropped by
        # another process): else each one stays here for the life of the process.
        if self._submitted:
            self._submitted = {e: t for e in due if (t := self._submitted.get(e)) is not None}
        waiting = {e for e, t in self._submitted.items() if now - t < RESUBMIT_MS}
        entries = [(member, at) for member, at in due if (member, at) not in waiting][:BATCH]
        members = [member for member, _ in entries]
        if self._stale_since:
            listed = set(members)
            self._stale_since = {m: t for m, t in self._stale_since.items() if m in listed}
        targets = [parse_timer_member(member) for member in members]
        users = list(dict.fromkeys(user for user, _ in targets))
        docs = await self.store.docs_read(
            [DocRead(keys.profile_key(user), keys.profile_marks_key(user)) for user in users]
        )
        # Each profile's timers only: the rest of a decoded profile (a few dozen objects)
        # is freed at once, not held for the whole batch of 1,000, where it made the
        # garbage collector's young generation large when it ran (a pause for requests).
        timers = {
            user: decode(doc.value, self.store.dictionaries).timers
            for user, doc in zip(users, docs, strict=True)
            if doc.value
        }
        firings, stale, moved, submitted = [], [], {}, []
        for (member, at), (user, rule_id) in zip(entries, targets, strict=True):
            armed = timers.get(user)
            timer = None if armed is None else armed.get(rule_id)
            if timer is not None and timer.due_at <= now:
                firings.append(firing_record(user, rule_id, timer))
                submitted.append((member, at))
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
            self._submitted.update((entry, now) for entry in submitted)
        return len(firings)

    async def release(self) -> None:
        """Hand the lease over now (on stop), so another process fires without waiting."""
        await self.store.release(LEASE, self.owner)

    async def pending(self) -> int:
        """Timers armed (for operations: the scheduler's backlog)."""
        return await self.store.zcard(keys.TIMERS_DUE)
