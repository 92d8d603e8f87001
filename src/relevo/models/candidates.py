"""Candidates and their features: the input of the hybrid's ranker.

Every source model proposes its top `per_source` unseen items for a user; the
union is the candidate set. Each (user, candidate) pair is described by

* per source: the raw score, the score standardised within the user's row
  (so scales learned on one fit carry over to a refit on more data) and the
  position in that source's list (`per_source` when absent);
* how many sources proposed it;
* point-in-time item statistics *as of the user's last interaction*: counts in
  the last day, week and 30 days, all-time count, days since the item was first
  and last touched. Only interactions at or before that moment count, so a
  feature never knows what happened later (no leak of the future, even from
  other users' training rows);
* user statistics: history length, days active, interactions on the last day.

The same code builds training rows (sources fitted on the early part of the
training period, labels from its late part) and serving rows (sources refitted
on the whole training period), so the ranker sees one feature definition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from relevo.models.base import Recommender, top_k
from relevo.models.interactions import FloatArray, IntArray, Interactions

DAY_MS = 86_400_000
ITEM_WINDOWS_DAYS: tuple[int, ...] = (1, 7, 30)


@dataclass(frozen=True)
class Candidates:
    """Rows of (user, item) pairs grouped by user, with their feature matrix."""

    users: IntArray
    items: IntArray
    features: npt.NDArray[np.float32]
    group_sizes: IntArray


class ActivityIndex:
    """Point-in-time counts: how often an item (or user) was touched before time t.

    Interactions are sorted once by ``(entity, time)`` into one int64 key, so
    "count for entity e in ``(t - w, t]``" is two `searchsorted` calls for any
    number of pairs at once.
    """

    def __init__(self, keys: IntArray, t0: int, span: int, n_entities: int) -> None:
        self.keys = keys
        self.t0 = t0
        self.span = span
        self.times = keys % span + t0
        self.starts = np.searchsorted(keys, np.arange(n_entities + 1, dtype=np.int64) * span)

    @classmethod
    def build(cls, entity: IntArray, timestamps: IntArray, n_entities: int) -> ActivityIndex:
        """Index interactions of `entity` (dense ids below `n_entities`) at `timestamps`."""
        t0 = int(timestamps.min()) if len(timestamps) else 0
        rel = timestamps - t0
        span = int(rel.max()) + 1 if len(rel) else 1
        keys = np.sort(entity.astype(np.int64) * span + rel)
        return cls(keys, t0, span, n_entities)

    def _key(self, entity: IntArray, t: IntArray) -> IntArray:
        rel = np.clip(t - self.t0, -1, self.span - 1)
        return entity.astype(np.int64) * self.span + rel

    def count(self, entity: IntArray, t: IntArray, window_ms: int | None = None) -> IntArray:
        """Interactions of `entity` with time in ``(t - window, t]`` (all before t if None)."""
        hi = np.searchsorted(self.keys, self._key(entity, t), side="right")
        start = self.starts[entity]
        if window_ms is None:
            lo = start
        else:
            lo = np.searchsorted(self.keys, self._key(entity, t - window_ms), side="right")
            lo = np.maximum(lo, start)
        counts: IntArray = np.maximum(hi - lo, 0).astype(np.int64)
        return counts

    def days_since_first_and_last(
        self, entity: IntArray, t: IntArray
    ) -> tuple[FloatArray, FloatArray]:
        """Days from the entity's first / latest interaction at or before t (NaN if none)."""
        n_before = self.count(entity, t)
        start = self.starts[entity]
        has = n_before > 0
        first = np.full(len(entity), np.nan, dtype=np.float32)
        last = np.full(len(entity), np.nan, dtype=np.float32)
        first[has] = (t[has] - self.times[start[has]]) / DAY_MS
        last[has] = (t[has] - self.times[start[has] + n_before[has] - 1]) / DAY_MS
        return first, last


class FeatureContext:
    """What the features need to know about the training data, computed once."""

    def __init__(
        self,
        items: ActivityIndex,
        user_first: IntArray,
        user_last: IntArray,
        user_count: IntArray,
        user_last_day: IntArray,
        item_count: IntArray,
    ) -> None:
        self.items = items
        self.user_first = user_first
        self.user_last = user_last
        self.user_count = user_count
        self.user_last_day = user_last_day
        self.item_count = item_count

    @classmethod
    def build(cls, interactions: Interactions) -> FeatureContext:
        """Index `interactions` (positive weights only) for point-in-time features."""
        pos = interactions.weights > 0
        items = interactions.items[pos]
        users = interactions.users[pos]
        ts = interactions.timestamps[pos]
        n_users, n_items = interactions.shape
        t_min = int(ts.min()) if len(ts) else 0
        user_last = np.full(n_users, t_min, dtype=np.int64)
        np.maximum.at(user_last, users, ts)
        user_first = np.full(n_users, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(user_first, users, ts)
        user_first = np.minimum(user_first, user_last)
        per_user = ActivityIndex.build(users, ts, n_users)
        return cls(
            items=ActivityIndex.build(items, ts, n_items),
            user_first=user_first,
            user_last=user_last,
            user_count=np.bincount(users, minlength=n_users).astype(np.int64),
            user_last_day=per_user.count(np.arange(n_users, dtype=np.int64), user_last, DAY_MS),
            item_count=np.bincount(items, minlength=n_items).astype(np.int64),
        )

    def to_state(self) -> dict[str, IntArray]:
        """Arrays that `from_state` turns back into this context (for `save`)."""
        return {
            "ctx_item_keys": self.items.keys,
            "ctx_item_meta": np.array([self.items.t0, self.items.span], dtype=np.int64),
            "ctx_user_first": self.user_first,
            "ctx_user_last": self.user_last,
            "ctx_user_count": self.user_count,
            "ctx_user_last_day": self.user_last_day,
            "ctx_item_count": self.item_count,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> FeatureContext:
        t0, span = (int(x) for x in state["ctx_item_meta"])
        item_count = np.asarray(state["ctx_item_count"])
        return cls(
            items=ActivityIndex(np.asarray(state["ctx_item_keys"]), t0, span, len(item_count)),
            user_first=np.asarray(state["ctx_user_first"]),
            user_last=np.asarray(state["ctx_user_last"]),
            user_count=np.asarray(state["ctx_user_count"]),
            user_last_day=np.asarray(state["ctx_user_last_day"]),
            item_count=item_count,
        )


def feature_names(source_names: list[str]) -> list[str]:
    """Column names of the matrix `build_candidates` returns, in order."""
    names: list[str] = []
    for s in source_names:
        names += [f"{s}_score", f"{s}_z", f"{s}_rank"]
    names += ["n_sources", "item_log_count"]
    names += [f"item_count_{d}d" for d in ITEM_WINDOWS_DAYS]
    names += ["item_count_before", "item_days_since_first", "item_days_since_last"]
    names += ["user_log_count", "user_days_active", "user_last_day_count"]
    return names


def build_candidates(
    sources: Mapping[str, Recommender],
    users: IntArray,
    per_source: int,
    seen: sp.csr_matrix,
    context: FeatureContext,
    *,
    batch_size: int = 512,
) -> Candidates:
    """Union of every source's top `per_source` unseen items per user, with features."""
    parts: list[Candidates] = []
    for start in range(0, len(users), batch_size):
        parts.append(
            _build_batch(sources, users[start : start + batch_size], per_source, seen, context)
        )
    if not parts:
        n_feat = len(feature_names(list(sources)))
        return Candidates(
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros((0, n_feat), np.float32),
            np.zeros(0, np.int64),
        )
    return Candidates(
        users=np.concatenate([p.users for p in parts]),
        items=np.concatenate([p.items for p in parts]),
        features=np.concatenate([p.features for p in parts]),
        group_sizes=np.concatenate([p.group_sizes for p in parts]),
    )


def _build_batch(
    sources: Mapping[str, Recommender],
    users: IntArray,
    per_source: int,
    seen: sp.csr_matrix,
    context: FeatureContext,
) -> Candidates:
    n_items = seen.shape[1]
    seen_r, seen_c = seen[users].nonzero()
    rows = np.broadcast_to(np.arange(len(users), dtype=np.int64)[:, None], (len(users), 1))
    dense: list[FloatArray] = []
    tops: list[tuple[IntArray, FloatArray]] = []
    for model in sources.values():
        shared = model.shared_scores()
        if shared is not None:
            # Same ranking for everyone: walk it once instead of a users x items matrix.
            dense.append(np.asarray(shared, dtype=np.float32))
            tops.append(_shared_top(dense[-1], seen[users], per_source))
            continue
        s = np.asarray(model.score_users(users), dtype=np.float32)
        s[seen_r, seen_c] = -np.inf
        dense.append(s)
        tops.append(top_k(s, per_source))
    # Candidate keys (row * n_items + item), unique and sorted: grouped by user, then item.
    keys = np.unique(
        np.concatenate([(rows * n_items + idx)[np.isfinite(top)] for idx, top in tops])
    )
    r, c = np.divmod(keys, n_items)
    cols: list[FloatArray] = []
    in_top = np.zeros(len(keys), dtype=np.float32)
    for s, (idx, top) in zip(dense, tops, strict=True):
        finite = np.isfinite(top)
        # Standardise against the source's own top list for this user: scales differ
        # between a fit on the early training period and the refit on all of it.
        n_fin = np.maximum(finite.sum(axis=1), 1)
        vals = np.where(finite, top, 0.0)
        mean = vals.sum(axis=1) / n_fin
        std = np.sqrt(np.where(finite, (vals - mean[:, None]) ** 2, 0.0).sum(axis=1) / n_fin)
        std[~(std > 0)] = 1.0
        raw = s[r, c] if s.ndim == 2 else s[c]
        rank = _rank_lookup(keys, (rows * n_items + idx)[finite], np.nonzero(finite)[1], per_source)
        in_top += rank < per_source
        cols += [raw, ((raw - mean[r]) / std[r]).astype(np.float32), rank.astype(np.float32)]
    u = users[r]
    t = context.user_last[u]
    items = c.astype(np.int64)
    cols.append(in_top)
    cols.append(np.log1p(context.item_count[items]).astype(np.float32))
    for days in ITEM_WINDOWS_DAYS:
        cols.append(context.items.count(items, t, days * DAY_MS).astype(np.float32))
    cols.append(context.items.count(items, t).astype(np.float32))
    first, last = context.items.days_since_first_and_last(items, t)
    cols += [first, last]
    cols.append(np.log1p(context.user_count[u]).astype(np.float32))
    cols.append(((t - context.user_first[u]) / DAY_MS).astype(np.float32))
    cols.append(context.user_last_day[u].astype(np.float32))
    features = np.column_stack(cols).astype(np.float32)
    return Candidates(
        users=u.astype(np.int64),
        items=items,
        features=features,
        group_sizes=np.bincount(r, minlength=len(users)).astype(np.int64),
    )


def _rank_lookup(keys: IntArray, listed: IntArray, positions: IntArray, absent: int) -> IntArray:
    """Position of each key in a source's list (`listed` keys at `positions`), else `absent`."""
    order = np.argsort(listed)
    sorted_keys = listed[order]
    at = np.minimum(np.searchsorted(sorted_keys, keys), max(len(sorted_keys) - 1, 0))
    out = np.full(len(keys), absent, dtype=np.int64)
    if len(sorted_keys):
        found = sorted_keys[at] == keys
        out[found] = positions[order][at[found]]
    return out


def _shared_top(
    scores: FloatArray, seen_rows: sp.csr_matrix, k: int
) -> tuple[IntArray, FloatArray]:
    """`top_k` of one shared score vector for users with different seen items.

    Only the first ``k + most items seen by one user`` of the global order can
    qualify, so each row looks at that prefix alone. Ties rank by item index,
    as in `top_k`; rows that run out of items are padded with -1 / -inf.
    """
    n_rows, n_items = seen_rows.shape
    order = np.argsort(-scores, kind="stable")
    most_seen = int(np.diff(seen_rows.indptr).max()) if n_rows else 0
    prefix = order[: min(n_items, k + most_seen)]
    unseen = ~seen_rows[:, prefix].toarray().astype(bool)
    position = np.cumsum(unseen, axis=1) - 1
    keep = unseen & (position < k)
    rows, cols = np.nonzero(keep)
    idx = np.full((n_rows, k), -1, dtype=np.int64)
    top = np.full((n_rows, k), -np.inf, dtype=np.float32)
    idx[rows, position[rows, cols]] = prefix[cols]
    top[rows, position[rows, cols]] = scores[prefix[cols]]
    return idx, top
