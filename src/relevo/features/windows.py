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
        self.total += 1
        previous = self.newest
        self.newest = newest = ts_ms if ts_ms > previous else previous
        recent = self.recent
        if recent and ts_ms < recent[-1]:
            insort(recent, ts_ms)
        else:  # the common case, events in time order: where `insort` would put it
            recent.append(ts_ms)
        horizon = bisect_right(recent, newest - EXACT_HORIZON_MS)
        overflow = len(recent) - MAX_EXACT
        if horizon or overflow > 0:
            del recent[: max(horizon, overflow)]
        _bump(self.hours, ts_ms // HOUR_MS, previous // HOUR_MS, newest // HOUR_MS, HOURS_KEPT)
        _bump(self.days, ts_ms // DAY_MS, previous // DAY_MS, newest // DAY_MS, DAYS_KEPT)

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


def _bump(buckets: dict[int, int], bucket: int, previous: int, newest: int, kept: int) -> None:
    """Count in `bucket`; drop buckets that fell out of the last `kept` (only when it moved)."""
    oldest_kept = newest - (kept - 1)
    if bucket >= oldest_kept:
        buckets[bucket] = buckets.get(bucket, 0) + 1
    # the common case, nothing stale, is seen by `min` in C, without a comprehension; and
    # without its ``default=``: a keyword argument doubled the call's cost (~1,000
    # instructions more, each time an event's hour or day moves the newest)
    if newest != previous and buckets and min(buckets) < oldest_kept:
        for stale in [b for b in buckets if b < oldest_kept]:
            del buckets[stale]
