"""`observe_many` counts a batch as `observe` counts its values one by one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from relevo.monitoring.metrics import LAG_BUCKETS, observe_many


def samples(histogram: Histogram) -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels.get("le", "")): sample.value
        for metric in histogram.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    }


def histogram() -> Histogram:
    return Histogram("lag", "lag", buckets=LAG_BUCKETS, registry=CollectorRegistry())


# Values on the bounds themselves, just around them, and anywhere up to past the last one.
_NEAR_BOUNDS = st.sampled_from([b + d for b in LAG_BUCKETS for d in (-1e-9, 0.0, 1e-9)])
AMOUNTS = st.lists(_NEAR_BOUNDS | st.floats(0, 1e6, allow_nan=False), max_size=200)


@given(AMOUNTS)
def test_a_batch_counts_as_its_values_one_by_one(amounts: list[float]) -> None:
    one_by_one, batched = histogram(), histogram()
    for amount in amounts:
        one_by_one.observe(amount)
    observe_many(batched, amounts)
    expected, found = samples(one_by_one), samples(batched)
    assert found.pop(("lag_sum", "")) == sum(amounts)  # added once, not value by value
    expected.pop(("lag_sum", ""))
    assert found == expected
