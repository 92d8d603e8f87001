"""The one recommender protocol every relevo model follows.

It copies the shape of `implicit`'s interface because it is small and complete:
``fit(interactions)``, batched ``recommend(user_ids, k, exclude_seen)``,
``similar_items(item_id, k)``, plus ``save(path)`` / ``load(path)`` so the model
registry can version a fitted model as a folder of plain files (JSON + ``.npz``,
no pickle: a model file must not be able to run code when it is loaded).

A subclass only says how to learn (`_fit`) and how to score (`score_users`,
dense rows over the whole catalog); the base class does the shared and
error-prone parts once: id mapping, excluding what a user already saw, top-k,
the popularity fallback for users the model never met, and persistence.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from relevo.models.interactions import FloatArray, IdArray, IntArray, Interactions

#: Bumped when the on-disk layout changes, so an old registry entry fails loudly.
FORMAT_VERSION = 1

#: Recommender classes by their `kind`, filled by `__init_subclass__`; `load` uses it.
MODEL_CLASSES: dict[str, type[Recommender]] = {}

State = dict[str, npt.NDArray[Any] | sp.csr_matrix]


class NotFittedError(RuntimeError):
    """A model was asked to recommend before `fit` (or `load`)."""


class Recommender(ABC):
    """Base of every recommender: subclasses implement `_fit`, `score_users` and state.

    Scores are "higher is better" and only comparable within one user's row.
    Indices (``recommend_indices``) are the fast path used by evaluation and
    the hybrid; ``recommend`` maps external ids in and out.
    """

    #: Stable name used in saved files and reports; unique per class.
    kind: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            MODEL_CLASSES[cls.kind] = cls

    def __init__(self) -> None:
        self.user_ids: IdArray | None = None
        self.item_ids: IdArray | None = None
        self._user_index: dict[str, int] = {}
        self._item_index: dict[str, int] = {}
        self.seen: sp.csr_matrix | None = None
        self.item_popularity: FloatArray | None = None

    # ------------------------------------------------------------ to implement
    @abstractmethod
    def params(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable) that recreate this model unfitted."""

    @abstractmethod
    def _fit(self, interactions: Interactions) -> None:
        """Learn from `interactions`; `self.seen` and popularity are already set."""

    @abstractmethod
    def score_users(self, users: IntArray) -> FloatArray:
        """Dense scores, shape ``(len(users), n_items)``, higher is better."""

    def _state(self) -> State:
        """Fitted arrays to persist besides the shared ones (ids, seen, popularity)."""
        return {}

    def _set_state(self, state: State) -> None:  # noqa: B027 - optional hook
        """Restore what `_state` returned."""

    def _save_extra(self, path: Path) -> None:  # noqa: B027 - optional hook
        """Persist anything that is not an array (sub-models, boosters)."""

    def _load_extra(self, path: Path) -> None:  # noqa: B027 - optional hook
        """Restore what `_save_extra` wrote."""

    def shared_scores(self) -> FloatArray | None:
        """One score vector that ranks items the same for every user, or None.

        Only user-independent models (popularity) return it; callers that build
        candidates for many users then skip a dense users x items matrix.
        """
        return None

    def item_vectors(self) -> npt.NDArray[np.float32] | sp.csr_matrix | None:
        """Item representations for `similar_items` (cosine); None if the model has none."""
        return None

    # ------------------------------------------------------------ fitting
    def fit(self, interactions: Interactions) -> Self:
        """Learn from `interactions` and remember their id space; returns self."""
        self.user_ids = interactions.user_ids
        self.item_ids = interactions.item_ids
        self._user_index = {}
        self._item_index = {}
        self.seen = interactions.to_csr(binary=True)
        self.item_popularity = np.asarray(self.seen.sum(axis=0), dtype=np.float32).ravel()
        self._fit(interactions)
        return self

    @property
    def is_fitted(self) -> bool:
        return self.item_ids is not None

    @property
    def n_items(self) -> int:
        return 0 if self.item_ids is None else len(self.item_ids)

    @property
    def n_users(self) -> int:
        return 0 if self.user_ids is None else len(self.user_ids)

    def _require_fitted(self) -> tuple[IdArray, IdArray, sp.csr_matrix, FloatArray]:
        if (
            self.user_ids is None
            or self.item_ids is None
            or self.seen is None
            or self.item_popularity is None
        ):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() or load()")
        return self.user_ids, self.item_ids, self.seen, self.item_popularity

    # ------------------------------------------------------------ recommending
    def recommend_indices(
        self,
        users: IntArray | Sequence[int],
        k: int = 10,
        *,
        exclude_seen: bool = True,
        batch_size: int = 1024,
    ) -> tuple[IntArray, FloatArray]:
        """Top-k item indices and scores for user indices, best first.

        A user index of -1 (unknown user) gets the training popularity ranking,
        so a recommendation always answers. Rows are padded with index -1 and
        score -inf when fewer than `k` items are left after excluding.
        """
        _, _, seen, popularity = self._require_fitted()
        users_arr = np.asarray(users, dtype=np.int64)
        k = max(0, min(k, self.n_items))
        out_idx = np.full((len(users_arr), k), -1, dtype=np.int64)
        out_score = np.full((len(users_arr), k), -np.inf, dtype=np.float32)
        if k == 0:
            return out_idx, out_score
        for start in range(0, len(users_arr), batch_size):
            batch = users_arr[start : start + batch_size]
            known = batch >= 0
            scores = np.empty((len(batch), self.n_items), dtype=np.float32)
            if known.any():
                scores[known] = self.score_users(batch[known])
            scores[~known] = popularity
            if exclude_seen and known.any():
                rows = seen[batch[known]]
                r, c = rows.nonzero()
                sub = scores[known]
                sub[r, c] = -np.inf
                scores[known] = sub
            idx, top = top_k(scores, k)
            out_idx[start : start + len(batch)] = np.where(np.isfinite(top), idx, -1)
            out_score[start : start + len(batch)] = top
        return out_idx, out_score

    def recommend(
        self, user_ids: Sequence[str] | str, k: int = 10, *, exclude_seen: bool = True
    ) -> tuple[npt.NDArray[np.object_], FloatArray]:
        """Top-k external item ids and scores for external user ids (batched).

        Returns arrays of shape ``(len(user_ids), k)``; a slot with no item
        (everything else already seen) holds None and score -inf.
        """
        user_list = [user_ids] if isinstance(user_ids, str) else list(user_ids)
        users = np.array([self.user_position(str(u)) for u in user_list], dtype=np.int64)
        idx, scores = self.recommend_indices(users, k, exclude_seen=exclude_seen)
        return self._external_items(idx), scores

    def similar_items(
        self, item_id: str, k: int = 10
    ) -> tuple[npt.NDArray[np.object_], FloatArray]:
        """The `k` items most similar to `item_id` (itself excluded), and their scores."""
        self._require_fitted()
        item = self.item_position(str(item_id))
        if item < 0:
            raise KeyError(f"unknown item id {item_id!r}")
        idx, scores = self.similar_items_indices(item, k)
        return self._external_items(idx[None, :])[0], scores

    def similar_items_indices(self, item: int, k: int = 10) -> tuple[IntArray, FloatArray]:
        """Cosine neighbours of item index `item` in `item_vectors()` space."""
        vectors = self.item_vectors()
        if vectors is None:
            # No item representation: items co-consumed with this one are the honest answer.
            _, _, seen, _ = self._require_fitted()
            vectors = seen.T.tocsr()
        sims = cosine_to_all(vectors, item)
        sims[item] = -np.inf
        k = max(0, min(k, self.n_items - 1))
        idx, top = top_k(sims[None, :], k)
        return idx[0], top[0]

    # ------------------------------------------------------------ ids
    def user_position(self, user_id: str) -> int:
        """Dense index of an external user id, -1 when the model never saw it."""
        user_ids, _, _, _ = self._require_fitted()
        if not self._user_index:
            self._user_index = {u: k for k, u in enumerate(user_ids.tolist())}
        return self._user_index.get(user_id, -1)

    def item_position(self, item_id: str) -> int:
        """Dense index of an external item id, -1 when the model never saw it."""
        _, item_ids, _, _ = self._require_fitted()
        if not self._item_index:
            self._item_index = {i: k for k, i in enumerate(item_ids.tolist())}
        return self._item_index.get(item_id, -1)

    def _external_items(self, idx: IntArray) -> npt.NDArray[np.object_]:
        _, item_ids, _, _ = self._require_fitted()
        out = np.empty(idx.shape, dtype=object)
        valid = idx >= 0
        out[valid] = item_ids[idx[valid]]
        out[~valid] = None
        return out

    # ------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write the fitted model to folder `path` (created; existing files replaced)."""
        user_ids, item_ids, seen, popularity = self._require_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT_VERSION, "kind": self.kind, "params": self.params()}
        (folder / "model.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        arrays: dict[str, npt.NDArray[Any]] = {
            "user_ids": user_ids,
            "item_ids": item_ids,
            "item_popularity": popularity,
        }
        state: State = {"seen": seen, **self._state()}
        for name, value in state.items():
            if sp.issparse(value):
                csr = sp.csr_matrix(value)
                arrays[f"{name}.data"] = csr.data
                arrays[f"{name}.indices"] = csr.indices
                arrays[f"{name}.indptr"] = csr.indptr
                arrays[f"{name}.shape"] = np.array(csr.shape, dtype=np.int64)
            else:
                arrays[name] = np.asarray(value)
        np.savez(folder / "state.npz", allow_pickle=False, **arrays)
        self._save_extra(folder)

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Read a model written by `save`; works from the base class or the right subclass."""
        folder = Path(path)
        meta = json.loads((folder / "model.json").read_text())
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{folder}: unsupported model format {meta.get('format')!r}")
        model_cls = MODEL_CLASSES.get(meta["kind"])
        if model_cls is None:
            raise ValueError(f"{folder}: unknown model kind {meta['kind']!r}")
        if cls is not Recommender and not issubclass(model_cls, cls):
            raise TypeError(f"{folder} holds a {model_cls.__name__}, not a {cls.__name__}")
        model = model_cls(**meta["params"])
        with np.load(folder / "state.npz", allow_pickle=False) as npz:
            raw = {name: npz[name] for name in npz.files}
        model.user_ids = raw.pop("user_ids")
        model.item_ids = raw.pop("item_ids")
        model.item_popularity = raw.pop("item_popularity")
        state: State = {}
        for name in [n for n in raw if n.endswith(".shape")]:
            base = name.removesuffix(".shape")
            rows, cols = (int(x) for x in raw.pop(name))
            state[base] = sp.csr_matrix(
                (raw.pop(f"{base}.data"), raw.pop(f"{base}.indices"), raw.pop(f"{base}.indptr")),
                shape=(rows, cols),
            )
        state.update(raw)
        seen = state.pop("seen")
        assert sp.issparse(seen)
        model.seen = sp.csr_matrix(seen)
        model._set_state(state)
        model._load_extra(folder)
        return model

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def top_k(scores: FloatArray, k: int) -> tuple[IntArray, FloatArray]:
    """Row-wise indices and values of the `k` largest scores, best first.

    `argpartition` then a sort of only k columns: O(n_items) per row instead of
    a full sort, which matters for catalogs of tens of thousands of items.
    Ties are broken by the lower item index, also at the k-th place (where
    `argpartition` alone would pick arbitrarily), so answers are reproducible.
    """
    n_rows, n = scores.shape
    k = min(k, n)
    if k == 0:
        return np.zeros((n_rows, 0), dtype=np.int64), np.zeros((n_rows, 0), dtype=np.float32)
    if k < n:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        kth = np.take_along_axis(scores, part, axis=1).min(axis=1)
        tied = np.flatnonzero((scores >= kth[:, None]).sum(axis=1) > k)
        if len(tied):
            sub = scores[tied]
            above = sub > kth[tied, None]
            at = sub == kth[tied, None]
            need = k - above.sum(axis=1)
            keep = above | (at & (np.cumsum(at, axis=1) <= need[:, None]))
            part[tied] = np.nonzero(keep)[1].reshape(len(tied), k)
    else:
        part = np.tile(np.arange(n), (n_rows, 1))
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    idx = np.take_along_axis(part, order, axis=1).astype(np.int64)
    return idx, np.take_along_axis(vals, order, axis=1).astype(np.float32)


def cosine_to_all(vectors: npt.NDArray[np.float32] | sp.csr_matrix, item: int) -> FloatArray:
    """Cosine similarity of row `item` of `vectors` to every row (0 for zero rows)."""
    if sp.issparse(vectors):
        mat = sp.csr_matrix(vectors)
        dots = np.asarray((mat @ mat[item].T).todense()).ravel()
        norms = np.sqrt(np.asarray(mat.multiply(mat).sum(axis=1)).ravel())
    else:
        arr = np.asarray(vectors)
        dots = arr @ arr[item]
        norms = np.linalg.norm(arr, axis=1)
    denom = norms * norms[item]
    out = np.zeros(len(dots), dtype=np.float32)
    np.divide(dots, denom, out=out, where=denom > 0, casting="unsafe")
    return out


def empty_csr(rows: int, cols: int) -> sp.csr_matrix:
    """An all-zero float32 CSR matrix of the given shape."""
    return sp.csr_matrix(
        (np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(rows + 1, np.int32)),
        shape=(rows, cols),
    )
