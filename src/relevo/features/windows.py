"""Windowed event counts in event time.

"How many views of shoes in the last 5 minutes?" must be exact for short windows,
where rules act on bursts, and cheap for long ones. A `WindowCounter` keeps:

- the timestamps of the last hour (relative to the newest event it has seen), so any
  window up to one hour is counted exactly, with no bucket rounding;
- hourly buckets for the last 25 hours and daily buckets for the last 31 days, so a
  window up to 24 h is counted in whole hours and up to 30 d in whole days. Such a
  count covers the window plus at most one bucket before it: it may include events
  up to one hour (24 h windows) or one day (30 d windows) older than the window,
  and never misses an event inside it;
- the all-time total.

Counts are asked "as of" a time ``now`` no earlier than the newest event counted
(live traffic, or a replay at event time). Late events are fine: they are counted
where they belong; one older than the exact horizon only enters the buckets.
At most `MAX_EXACT` timestamps are kept per counter: a counter receiving more than
that within an hour undercounts its short windows (documented saturation).
"""

from __future__ import annotations

from bisect import bisect_right, insort

import msgspec

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
EXACT_HORIZON_MS = HOUR_MS
MAX_EXACT = 10_000
HOURS_KEPT = 25
DAYS_KEPT = 31
LONGEST_WINDOW_MS = 30 * DAY_MS

WINDOWS_MS: dict[str, int] = {"5m": 5 * MINUTE_MS, "1h": HOUR_MS, "24h": DAY_MS, "30d": 30 * DAY_MS}
"""The windows every profile reports, by name."""


class WindowCounter(msgspec.Struct, array_like=True):
    """Counts of one stream of events (one type, or one type in one category)."""

    recent: list[int] = msgspec.field(default_factory=list)
    hours: dict[int, int] = msgspec.field(default_factory=dict)
    days: dict[int, int] = msgspec.field(default_factory=dict)
    total: int = 0
    newest: int = 0

    def add(self, ts_ms: int) -> None:
        """Count one event at `ts_ms`.

        >>> counter = WindowCounter()
        >>> for ts in (0, 60_000, 240_000, 400_000):
        ...     counter.add(ts)
        >>> counter.count(WINDOWS_MS["5m"], now_ms=400_000)  # (100 s, 400 s]
        2
        """
        previous = self.newest
        if ts_ms < previous:
            self._add_late(ts_ms, previous)
            return
        # An event no older than the newest (most of them): it appends to `recent`, whose
        # oldest times are dropped only when one fell behind the horizon (a comparison,
        # no bisect); its buckets are the newest, always kept, and older buckets can fall
        # out only when the newest moved (checked by `min`, in C). No helper calls: the
        # fold makes two or three `add` per event.
        self.total += 1
        self.newest = ts_ms
        recent = self.recent
        if recent and ts_ms < recent[-1]:  # only in a counter `add` did not keep
            insort(recent, ts_ms)
        else:
            recent.append(ts_ms)
        if recent[0] <= ts_ms - EXACT_HORIZON_MS or len(recent) > MAX_EXACT:
            horizon = bisect_right(recent, ts_ms - EXACT_HORIZON_MS)
            del recent[: max(horizon, len(recent) - MAX_EXACT)]
        hours, hour = self.hours, ts_ms // HOUR_MS
        hours[hour] = hours.get(hour, 0) + 1
        if hour != previous // HOUR_MS and min(hours) <= hour - HOURS_KEPT:
            _drop_older(hours, hour - (HOURS_KEPT - 1))
        days, day = self.days, ts_ms // DAY_MS
        days[day] = days.get(day, 0) + 1
        if day != previous // DAY_MS and min(days) <= day - DAYS_KEPT:
            _drop_older(days, day - (DAYS_KEPT - 1))

    def _add_late(self, ts_ms: int, newest: int) -> None:
        """`add` of an event older than the `newest`: counted where it belongs, if still
        kept. The newest bucket does not move, so no other bucket falls out."""
        self.total += 1
        recent = self.recent
        insort(recent, ts_ms)
        horizon = bisect_right(recent, newest - EXACT_HORIZON_MS)
        overflow = len(recent) - MAX_EXACT
        if horizon or overflow > 0:
            del recent[: max(horizon, overflow)]
        hour = ts_ms // HOUR_MS
        if hour > newest // HOUR_MS - HOURS_KEPT:
            self.hours[hour] = self.hours.get(hour, 0) + 1
        day = ts_ms // DAY_MS
        if day > newest // DAY_MS - DAYS_KEPT:
            self.days[day] = self.days.get(day, 0) + 1

    def count(self, window_ms: int, now_ms: int) -> int:
        """Events in ``(now - window, now]``: exact up to 1 h, whole buckets beyond."""
        if window_ms <= EXACT_HORIZON_MS:
            return bisect_right(self.recent, now_ms) - bisect_right(self.recent, now_ms - window_ms)
        if window_ms <= DAY_MS:
            buckets, size = self.hours, HOUR_MS
        elif window_ms <= LONGEST_WINDOW_MS:
            buckets, size = self.days, DAY_MS
        else:
            raise ValueError("windows longer than 30 days are not kept")
        low, high = (now_ms - window_ms) // size, now_ms // size
        if buckets and low <= min(buckets) and max(buckets) <= high:
            return sum(buckets.values())  # the common case, in C: every bucket kept is inside
        return sum(count for bucket, count in buckets.items() if low <= bucket <= high)

    def counts(self, now_ms: int) -> dict[str, int]:
        """Every reported window, plus the all-time total."""
        found = {name: self.count(window, now_ms) for name, window in WINDOWS_MS.items()}
        found["total"] = self.total
        return found


def _drop_older(buckets: dict[int, int], oldest_kept: int) -> None:
    """Drop the buckets before `oldest_kept` (the newest bucket moved past them)."""
    for stale in [b for b in buckets if b < oldest_kept]:
        del buckets[stale]


def counted_once(ts_ms: int) -> WindowCounter:
    """A new counter of one event at `ts_ms`, built at once: what ``WindowCounter()``
    then ``add(ts_ms)`` leaves (for a time before 1970, that is what it does).

    A new profile starts several counters per event; building each whole saves the
    empty containers and the `add`.

    >>> counted_once(7_200_000)
    WindowCounter(recent=[7200000], hours={2: 1}, days={0: 1}, total=1, newest=7200000)
    """
    if ts_ms < 0:
        counter = WindowCounter()
        counter.add(ts_ms)
        return counter
    return WindowCounter([ts_ms], {ts_ms // HOUR_MS: 1}, {ts_ms // DAY_MS: 1}, 1, ts_ms)
