"""Unshifted traffic stays ok: 50 windows per feature, pooled through the real store.

Acceptance (issue 6): false alarms are bounded, at most 3 warnings in 50 unshifted
windows (the warn level is p < 0.01, so about 0.5 are expected per feature), and no
drift. The values are the monitored features of a synthetic stream computed by the
same feature code as live traffic; each window goes through `Observations` (the
store stream shared by processes) and `LiveDrift`, on both backends.
"""

from __future__ import annotations

from collections import Counter
from functools import cache

import numpy as np

from relevo.features.profile import FeatureParams
from relevo.monitoring.features import Value, replay_features
from relevo.monitoring.live_drift import LiveDrift, Observations
from relevo.monitoring.references import ReferenceSet, capture
from tests.conftest import StoreHarness
from tests.monitoring.streams import shoppers

T0 = 1_767_225_600_000
WINDOW = 300
WINDOWS = 50


@cache
def streams() -> tuple[ReferenceSet, dict[str, list[Value]]]:
    """The reference and the live columns (computed once for both backends)."""
    rng = np.random.default_rng(11)
    params = FeatureParams()
    reference = capture(
        replay_features(shoppers(rng, 3000, T0, prefix="ref"), params),
        reference_id="test",
        source="baseline",
        now_ms=T0,
    )
    # Context features are observed once per shopper: the sparsest, they set the length.
    live = replay_features(shoppers(rng, WINDOW * WINDOWS, T0, prefix="live"), params)
    return reference, live


async def test_fifty_unshifted_windows_raise_at_most_three_warnings(
    harness: StoreHarness,
) -> None:
    reference, live = streams()
    observations = Observations(harness.store, harness.clock)
    drift = LiveDrift(harness.store, harness.clock, observations, window_size=WINDOW)
    statuses: Counter[tuple[str, str]] = Counter()
    for step in range(WINDOWS):
        chunk = {name: values[step * WINDOW : (step + 1) * WINDOW] for name, values in live.items()}
        observations.add_columns(chunk)
        await observations.flush()
        state, alerts = await drift.evaluate(reference)
        await drift.save(state)
        assert alerts == []
        for name, result in state.results.items():
            if result.evaluated_at is not None and result.window == state.windows[name] - 1:
                statuses[(name, result.drift.status)] += 1
        harness.clock.advance(1000)
    state = await drift.state()
    assert set(state.windows) == set(reference.profile.features)
    assert min(state.windows.values()) == WINDOWS
    warnings = {name: statuses[(name, "warn")] for name in state.windows}
    assert all(count <= 3 for count in warnings.values()), warnings
    assert not any(status == "drift" for _, status in statuses)
