"""Windowed counts against a brute-force recount of the same events."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from relevo.features.windows import DAY_MS, HOUR_MS, WINDOWS_MS, WindowCounter

START = 1_767_225_600_000

# Events spread over ~40 days, with bursts packed into minutes, in any arrival order.
offsets = st.one_of(
    st.integers(0, 40 * DAY_MS),
    st.integers(39 * DAY_MS, 39 * DAY_MS + 2 * HOUR_MS),
)
exact_windows = st.sampled_from([1, 1_000, 60_000, 5 * 60_000, 17 * 60_000, HOUR_MS])


def brute(timestamps: list[int], window: int, now: int) -> int:
    return sum(now - window < ts <= now for ts in timestamps)


@given(
    events=st.lists(offsets, max_size=300), lag=st.integers(0, 3 * HOUR_MS), window=exact_windows
)
@settings(max_examples=300, deadline=None)
def test_windows_up_to_an_hour_are_exact(events: list[int], lag: int, window: int) -> None:
    counter = WindowCounter()
    timestamps = [START + offset for offset in events]
    for ts in timestamps:
        counter.add(ts)
    now = max(timestamps, default=START) + lag
    assert counter.count(window, now) == brute(timestamps, window, now)
    assert counter.total == len(timestamps)


@given(events=st.lists(offsets, max_size=300), lag=st.integers(0, 3 * DAY_MS))
@settings(max_examples=300, deadline=None)
def test_longer_windows_cover_the_window_plus_at_most_one_bucket(
    events: list[int], lag: int
) -> None:
    counter = WindowCounter()
    timestamps = [START + offset for offset in events]
    for ts in timestamps:
        counter.add(ts)
    now = max(timestamps, default=START) + lag
    for name, bucket in (("24h", HOUR_MS), ("30d", DAY_MS)):
        window = WINDOWS_MS[name]
        found = counter.count(window, now)
        assert brute(timestamps, window, now) <= found <= brute(timestamps, window + bucket, now)


def test_four_views_within_five_minutes_versus_spread_over_six() -> None:
    burst, spread = WindowCounter(), WindowCounter()
    for minute in (0, 1, 2, 4):
        burst.add(START + minute * 60_000)
    for minute in (0, 2, 4, 6):
        spread.add(START + minute * 60_000)
    assert burst.count(WINDOWS_MS["5m"], START + 4 * 60_000) == 4
    assert spread.count(WINDOWS_MS["5m"], START + 6 * 60_000) == 3


def test_state_stays_bounded() -> None:
    counter = WindowCounter()
    for minute in range(60 * 24 * 60):  # 60 days, one event a minute
        counter.add(START + minute * 60_000)
    assert len(counter.recent) <= 61
    assert len(counter.hours) <= 25
    assert len(counter.days) <= 31


@given(events=st.lists(offsets, max_size=300), lag=st.integers(0, 40 * DAY_MS))
@settings(max_examples=300, deadline=None)
def test_longer_windows_count_the_buckets_they_span(events: list[int], lag: int) -> None:
    counter = WindowCounter()
    for offset in events:
        counter.add(START + offset)
    now = START + max(events, default=0) + lag
    for buckets, size, window in ((counter.hours, HOUR_MS, "24h"), (counter.days, DAY_MS, "30d")):
        low, high = (now - WINDOWS_MS[window]) // size, now // size
        spanned = sum(count for bucket, count in buckets.items() if low <= bucket <= high)
        assert counter.count(WINDOWS_MS[window], now) == spanned
