"""The temporal split and the ranking metrics, against hand-computed answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from relevo.models.evaluation import (
    ranking_metrics,
    temporal_split,
    validation_split,
)
from relevo.models.interactions import Interactions
from relevo.models.synthetic import SyntheticData


def _history(counts: dict[str, int]) -> Interactions:
    rows = []
    for user, n in counts.items():
        # Written newest first so input order and time order disagree.
        rows += [{"user_id": user, "item_id": f"i{k}", "timestamp": 100 - k} for k in range(n)]
    return Interactions.from_records(rows)


def test_no_test_interaction_is_in_train_and_test_follows_train_in_time(
    tastes: SyntheticData,
) -> None:
    data = tastes.interactions
    split = temporal_split(data)
    assert len(split.train) + len(split.test) == len(data)
    train_keys = set(zip(split.train.users, split.train.timestamps, split.train.items, strict=True))
    test_keys = set(zip(split.test.users, split.test.timestamps, split.test.items, strict=True))
    assert not train_keys & test_keys
    last_train = np.full(data.n_users, -1, dtype=np.int64)
    np.maximum.at(last_train, split.train.users, split.train.timestamps)
    first_test = np.full(data.n_users, np.iinfo(np.int64).max)
    np.minimum.at(first_test, split.test.users, split.test.timestamps)
    tested = np.unique(split.test.users)
    assert np.all(last_train[tested] <= first_test[tested])


@pytest.mark.parametrize(
    ("n", "n_test"), [(1, 0), (2, 1), (3, 1), (5, 1), (7, 1), (8, 2), (10, 2), (13, 3)]
)
def test_test_size_is_a_rounded_fifth_with_one_each_side(n: int, n_test: int) -> None:
    split = temporal_split(_history({"u": n}))
    assert len(split.test) == n_test
    assert len(split.train) == n - n_test


def test_latest_interactions_go_to_test() -> None:
    split = temporal_split(_history({"u": 5}), 0.4)
    # Items i0, i1 have the latest timestamps (100, 99).
    assert sorted(split.test.item_ids[split.test.items].tolist()) == ["i0", "i1"]


def test_users_with_one_interaction_stay_in_train_and_are_not_evaluated() -> None:
    split = temporal_split(_history({"lonely": 1, "busy": 5}))
    assert split.test.user_ids[np.unique(split.test.users)].tolist() == ["busy"]
    assert split.train.user_ids[split.evaluated_users()].tolist() == ["busy"]
    assert "lonely" in split.train.user_ids[split.train.users].tolist()


def test_ties_are_split_by_input_order() -> None:
    rows = [{"user_id": "u", "item_id": str(k), "timestamp": 7} for k in range(5)]
    split = temporal_split(Interactions.from_records(rows))
    assert split.test.item_ids[split.test.items].tolist() == ["4"]


def test_relevant_items_exclude_items_seen_in_train() -> None:
    rows = [
        {"user_id": "u", "item_id": "a", "timestamp": 1},
        {"user_id": "u", "item_id": "b", "timestamp": 2},
        {"user_id": "u", "item_id": "a", "timestamp": 3},
        {"user_id": "u", "item_id": "c", "timestamp": 4},
        {"user_id": "u", "item_id": "d", "timestamp": 5},
    ]
    split = temporal_split(Interactions.from_records(rows), 0.6)
    relevant = split.relevant().toarray()[0]
    assert relevant.tolist() == [0.0, 0.0, 1.0, 1.0]


def test_validation_split_never_reaches_into_test(tastes: SyntheticData) -> None:
    split = temporal_split(tastes.interactions)
    inner = validation_split(split.train)
    assert len(inner.train) + len(inner.test) == len(split.train)
    assert inner.test.timestamps.max() <= split.train.timestamps.max()


def test_bad_fraction_is_refused(tastes: SyntheticData) -> None:
    with pytest.raises(ValueError, match="test_fraction"):
        temporal_split(tastes.interactions, 1.0)


def _dcg(ranks: list[int]) -> float:
    return sum(1.0 / math.log2(r + 1) for r in ranks)


def test_metrics_on_a_hand_computed_example() -> None:
    # User 0: relevant {1, 3, 5}; list [1, 2, 3, 4] -> hits at ranks 1 and 3.
    # User 1: relevant {0}; list [2, 4, 0, 1] -> hit at rank 3.
    # User 2: relevant {7}; list [1, 2, 3, 4] -> no hit.
    relevant = sp.csr_matrix(
        (np.ones(5), ([0, 0, 0, 1, 2], [1, 3, 5, 0, 7])), shape=(3, 10), dtype=np.float32
    )
    recs = np.array([[1, 2, 3, 4], [2, 4, 0, 1], [1, 2, 3, 4]])
    users = np.array([0, 1, 2])
    m = ranking_metrics(recs, relevant, users, ks=[2, 4], n_items=10)
    assert m["recall@2"] == pytest.approx((1 / 2 + 0 + 0) / 3)
    assert m["recall@4"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert m["hr@2"] == pytest.approx(1 / 3)
    assert m["hr@4"] == pytest.approx(2 / 3)
    ndcg0 = _dcg([1, 3]) / _dcg([1, 2, 3])
    ndcg1 = _dcg([3]) / _dcg([1])
    assert m["ndcg@4"] == pytest.approx((ndcg0 + ndcg1 + 0) / 3)
    assert m["ndcg@2"] == pytest.approx((_dcg([1]) / _dcg([1, 2])) / 3)
    assert m["coverage@2"] == pytest.approx(3 / 10)  # items 1, 2, 4
    assert m["coverage@4"] == pytest.approx(5 / 10)  # items 0..4


def test_a_perfect_list_scores_one_even_with_more_relevant_than_k() -> None:
    relevant = sp.csr_matrix(np.ones((1, 6), dtype=np.float32))
    m = ranking_metrics(np.array([[5, 4, 3]]), relevant, np.array([0]), ks=[3])
    assert m["recall@3"] == 1.0
    assert m["ndcg@3"] == pytest.approx(1.0)


def test_empty_slots_count_as_misses() -> None:
    relevant = sp.csr_matrix(np.array([[1, 1, 0]], dtype=np.float32))
    m = ranking_metrics(np.array([[-1, 1]]), relevant, np.array([0]), ks=[2], n_items=3)
    assert m["ndcg@2"] == pytest.approx(_dcg([2]) / _dcg([1, 2]))
    assert m["coverage@2"] == pytest.approx(1 / 3)


def test_no_users_gives_zeros() -> None:
    m = ranking_metrics(np.zeros((0, 2), dtype=np.int64), sp.csr_matrix((1, 3)), np.array([]), [2])
    assert m == {"recall@2": 0.0, "ndcg@2": 0.0, "hr@2": 0.0, "coverage@2": 0.0}
