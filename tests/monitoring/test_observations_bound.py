"""The observations stream is bounded in values (so in bytes), whatever the batch sizes.

One message per applied batch used to carry every observed value: a fast ingestion
filled the stream (bounded in messages only) with tens of MB. Now a message carries a
uniform sample of at most `MESSAGE_VALUES` values per feature, and the stream keeps
about `STREAM_VALUES` values per feature, `STREAM_KEPT` messages at most (``MAXLEN ~``:
Redis trims whole nodes, of at most 100 entries or 4 KB).
"""

from __future__ import annotations

import statistics

from relevo.monitoring.live_drift import (
    MESSAGE_VALUES,
    STREAM_KEPT,
    STREAM_VALUES,
    Observations,
)
from tests.conftest import StoreHarness


async def test_a_message_carries_a_uniform_sample_of_its_values(harness: StoreHarness) -> None:
    observations = Observations(harness.store, harness.clock)
    values = [float(number) for number in range(3 * MESSAGE_VALUES)]
    observations.add_columns({"event.value": values, "event.type": ["view"] * 50})
    for value in values[: MESSAGE_VALUES + 500]:
        observations.add({"profile.events": value})
    await observations.flush()
    (message,), _ = await observations.read(None)
    assert len(message["event.value"]) == MESSAGE_VALUES
    assert message["event.type"] == ["view"] * 50  # fewer than the bound: all of them
    assert len(message["profile.events"]) == MESSAGE_VALUES
    # A uniform sample of 0..2999 (not the first ones): its mean is 1500 give or take 22
    # (one standard error, 1000 drawn without replacement out of 3000).
    assert abs(statistics.fmean(message["event.value"]) - 1_500) < 200
    assert len(set(message["event.value"])) == MESSAGE_VALUES
    assert observations.dropped == 2 * MESSAGE_VALUES + 500


async def test_values_added_one_at_a_time_are_a_uniform_sample(harness: StoreHarness) -> None:
    """Past the bound, a value added alone (a decision's score) takes a slot with the odds
    of a batch's values (`Observations._replace`, one draw): each value seen is kept with
    the same odds, the first ones as the last ones."""
    observations = Observations(harness.store, harness.clock)
    for value in range(3 * MESSAGE_VALUES):
        observations.add({"decision.score": float(value)})
    await observations.flush()
    (message,), _ = await observations.read(None)
    kept = message["decision.score"]
    assert len(kept) == len(set(kept)) == MESSAGE_VALUES
    assert observations.dropped == 2 * MESSAGE_VALUES
    # 1000 of 3000 drawn without replacement: the mean is 1500 give or take 22, and each
    # third of the values holds 333 of them give or take 12 (bounds: 9 and 5 of those).
    assert abs(statistics.fmean(kept) - 1_500) < 200
    for third in range(3):
        low, high = third * MESSAGE_VALUES, (third + 1) * MESSAGE_VALUES
        assert abs(sum(low <= value < high for value in kept) - MESSAGE_VALUES / 3) < 60


async def test_the_stream_keeps_a_bounded_number_of_messages(harness: StoreHarness) -> None:
    observations = Observations(harness.store, harness.clock)
    for step in range(STREAM_KEPT + 250):  # small messages: bounded by their count
        observations.add({"event.value": float(step)})
        await observations.flush()
        harness.clock.advance(1)
    kept = await observations.columns(limit_messages=10 * STREAM_KEPT)
    assert STREAM_KEPT <= len(kept["event.value"]) < STREAM_KEPT + 200
    assert kept["event.value"][-1] == float(STREAM_KEPT + 249)  # the newest are kept


async def test_large_messages_are_bounded_by_their_values(harness: StoreHarness) -> None:
    """A fast ingestion: every message full. The stream keeps about `STREAM_VALUES`."""
    observations = Observations(harness.store, harness.clock)
    for step in range(30):
        observations.add_columns({"event.value": [float(step)] * (2 * MESSAGE_VALUES)})
        await observations.flush()
        harness.clock.advance(1)
    kept = await observations.columns()
    assert STREAM_VALUES <= len(kept["event.value"]) <= STREAM_VALUES + MESSAGE_VALUES
    assert kept["event.value"][-1] == 29.0
