"""The injectable clock.

Engine logic never calls ``time.time()``: it asks a `Clock`. Live servers use the
system clock; tests and replays drive a `ManualClock`, so every computation that
depends on "now" is deterministic. Times are integer epoch milliseconds (UTC).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch, UTC."""
        ...


class SystemClock:
    """The wall clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that moves only when told to.

    >>> clock = ManualClock(1_000)
    >>> clock.advance(500)
    >>> clock.now_ms()
    1500
    """

    def __init__(self, start_ms: int = 1_767_225_600_000) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> None:
        if ms < 0:
            raise ValueError("a clock never goes back")
        self._now += ms

    def set(self, now_ms: int) -> None:
        self._now = now_ms


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_datetime(ms: int) -> datetime:
    """Epoch milliseconds to an aware UTC datetime."""
    return _EPOCH + timedelta(milliseconds=ms)


def to_iso(ms: int) -> str:
    """Epoch milliseconds to ISO-8601 with millisecond precision and a ``Z`` suffix.

    >>> to_iso(0)
    '1970-01-01T00:00:00.000Z'
    >>> to_iso(-1)
    '1969-12-31T23:59:59.999Z'
    """
    seconds, millis = divmod(ms, 1000)
    return _iso_second(seconds) + _MILLIS[millis]


_MILLIS = [f".{millis:03d}Z" for millis in range(1000)]
"""Each millisecond's suffix, made once: formatting it costs as much as the rest."""


@lru_cache(maxsize=4096)
def _iso_second(seconds: int) -> str:
    """The date and time of one second: events come in bursts of nearby times, and
    formatting a datetime costs more than the rest of a rule's view of an event."""
    if _YEAR_1000 <= seconds < _YEAR_10000:  # C's strftime pads years only in this range
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return (_EPOCH + timedelta(seconds=seconds)).isoformat(timespec="seconds")[:-6]


_YEAR_1000 = -30_610_224_000
_YEAR_10000 = 253_402_300_800


def from_datetime(value: datetime) -> int:
    """An aware datetime to epoch milliseconds."""
    if value.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous; give a time zone")
    return (value - _EPOCH) // timedelta(milliseconds=1)
