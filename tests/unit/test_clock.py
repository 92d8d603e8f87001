"""Epoch milliseconds to ISO-8601 and back: exact for every millisecond a profile can hold."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from relevo.clock import from_datetime, to_iso

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
YEAR_1 = -62_135_596_800_000
YEAR_10000 = 253_402_300_800_000


@given(ms=st.integers(YEAR_1, YEAR_10000 - 1))
def test_to_iso_is_the_datetime_to_the_millisecond(ms: int) -> None:
    moment = EPOCH + dt.timedelta(milliseconds=ms)
    text = to_iso(ms)
    assert text == moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert from_datetime(dt.datetime.fromisoformat(text)) == ms
