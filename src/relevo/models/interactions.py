"""The `Interactions` container: who touched what, when, and how strongly.

Every offline model, the evaluation and the benches speak this one shape, so a
dataset is parsed once and then only sliced. It is columnar (one numpy array per
field) because the models need sparse matrices and vectorised time arithmetic,
not Python objects per event.

Three sources feed it, all ending in `Interactions.from_arrays`:

* MovieLens-100K ``u.data`` (``user \\t item \\t rating \\t unix seconds``): every
  rating is an implicit interaction of type ``rating``; genres and titles are read
  from ``u.item`` beside it when that file exists.
* relevo JSONL events: one JSON object per line with ``type``, ``user_id``,
  ``item_id`` and ``timestamp`` (ISO-8601 with a zone, or epoch milliseconds).
* records: a pyarrow Table (the core's Parquet archive has exactly the columns
  ``user_id, item_id, type, timestamp``) or a list of dicts.

Indices are dense ints assigned in order of first appearance; the external ids
are kept as strings because relevo's event schema uses string ids everywhere.
Slicing (`subset`) keeps the index space, so a train and a test part of one
dataset stay comparable.

>>> data = Interactions.from_records([
...     {"user_id": "u1", "item_id": "a", "type": "view", "timestamp": 1000},
...     {"user_id": "u1", "item_id": "b", "type": "purchase", "timestamp": 2000},
...     {"user_id": "u2", "item_id": "a", "type": "click", "timestamp": 1500},
... ])
>>> data.n_users, data.n_items, len(data)
(2, 2, 3)
>>> data.to_csr().toarray().tolist()
[[1.0, 8.0], [2.0, 0.0]]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import scipy.sparse as sp

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
IdArray = npt.NDArray[np.str_]

#: How much one event of a type says about a user's interest, relative to a view.
#: The ordering (purchase > cart > click > view) is what matters; the ratios follow
#: the usual funnel conversion rates of a storefront. Unknown (custom) types count 1.
DEFAULT_TYPE_WEIGHTS: Mapping[str, float] = {
    "impression": 0.0,
    "view": 1.0,
    "rating": 1.0,
    "search": 1.0,
    "click": 2.0,
    "add_to_cart": 4.0,
    "remove_from_cart": 0.0,
    "purchase": 8.0,
}


class InteractionsError(ValueError):
    """A dataset could not be read as interactions (bad line, naive timestamp, ...)."""


@dataclass(frozen=True, eq=False)
class Interactions:
    """Columnar interactions over a fixed user and item index space.

    `users[k]`, `items[k]`, `timestamps[k]` (epoch ms), `types[k]` (an index into
    `type_names`) and `weights[k]` describe the k-th interaction. `user_ids[u]`
    and `item_ids[i]` give the external ids of index ``u`` and ``i``.
    `item_text[i]`, when present, is free text (title, genres, tags) for
    content-based models; models must work without it.
    """

    user_ids: IdArray
    item_ids: IdArray
    users: IntArray
    items: IntArray
    timestamps: IntArray
    types: IntArray
    type_names: tuple[str, ...]
    weights: FloatArray
    item_text: tuple[str, ...] | None = None
    _user_index: dict[str, int] = field(default_factory=dict, repr=False)
    _item_index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        n = len(self.users)
        for name in ("items", "timestamps", "types", "weights"):
            if len(getattr(self, name)) != n:
                raise InteractionsError(f"column {name!r} has a different length than 'users'")
        if self.item_text is not None and len(self.item_text) != len(self.item_ids):
            raise InteractionsError("item_text must have one entry per item")
        if not self._user_index:
            self._user_index.update({uid: k for k, uid in enumerate(self.user_ids.tolist())})
        if not self._item_index:
            self._item_index.update({iid: k for k, iid in enumerate(self.item_ids.tolist())})

    # ------------------------------------------------------------------ sizes
    def __len__(self) -> int:
        return len(self.users)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_users, self.n_items)

    # ------------------------------------------------------------------ lookups
    def user_index(self, user_id: str) -> int | None:
        """The dense index of an external user id, or None when it is unknown."""
        return self._user_index.get(str(user_id))

    def item_index(self, item_id: str) -> int | None:
        """The dense index of an external item id, or None when it is unknown."""
        return self._item_index.get(str(item_id))

    # ------------------------------------------------------------------ views
    def to_csr(self, *, binary: bool = False) -> sp.csr_matrix:
        """User x item matrix; repeated interactions add their weights up.

        `binary=True` gives 1 wherever the user touched the item with a positive
        weight, which is what the neighbourhood and linear baselines expect.
        """
        keep = self.weights > 0
        data = np.ones(int(keep.sum()), dtype=np.float32) if binary else self.weights[keep]
        mat = sp.csr_matrix(
            (data, (self.users[keep], self.items[keep])), shape=self.shape, dtype=np.float32
        )
        mat.sum_duplicates()
        if binary:
            mat.data[:] = 1.0
        return mat

    def subset(self, mask: npt.NDArray[np.bool_]) -> Interactions:
        """The interactions where `mask` is true, in the same index space."""
        return Interactions(
            user_ids=self.user_ids,
            item_ids=self.item_ids,
            users=self.users[mask],
            items=self.items[mask],
            timestamps=self.timestamps[mask],
            types=self.types[mask],
            type_names=self.type_names,
            weights=self.weights[mask],
            item_text=self.item_text,
            _user_index=self._user_index,
            _item_index=self._item_index,
        )

    def time_order(self) -> IntArray:
        """Positions sorted by (user, timestamp), ties kept in input order.

        Input order is the order events were appended to the log, so for equal
        timestamps it is the best evidence of what happened first.
        """
        return np.lexsort((np.arange(len(self)), self.timestamps, self.users)).astype(np.int64)

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_arrays(
        cls,
        user_ids: Sequence[Any] | npt.NDArray[Any],
        item_ids: Sequence[Any] | npt.NDArray[Any],
        timestamps_ms: Sequence[int] | npt.NDArray[np.int64],
        types: Sequence[str] | npt.NDArray[Any] | None = None,
        *,
        type_weights: Mapping[str, float] | None = None,
        item_text: Mapping[str, str] | None = None,
    ) -> Interactions:
        """Build from parallel columns of external ids, epoch-ms times and type names."""
        users_raw = np.asarray(user_ids).astype(str)
        items_raw = np.asarray(item_ids).astype(str)
        ts = np.asarray(timestamps_ms, dtype=np.int64)
        n = len(users_raw)
        if len(items_raw) != n or len(ts) != n:
            raise InteractionsError("user, item and timestamp columns differ in length")
        type_raw = np.full(n, "view") if types is None else np.asarray(types).astype(str)
        uniq_users, users = _first_seen_codes(users_raw)
        uniq_items, items = _first_seen_codes(items_raw)
        type_names, type_codes = np.unique(type_raw, return_inverse=True)
        weights_by_type = {**DEFAULT_TYPE_WEIGHTS, **(type_weights or {})}
        per_type = np.array(
            [weights_by_type.get(t, 1.0) for t in type_names.tolist()], dtype=np.float32
        )
        text = None
        if item_text is not None:
            text = tuple(item_text.get(iid, "") for iid in uniq_items.tolist())
        return cls(
            user_ids=uniq_users,
            item_ids=uniq_items,
            users=users,
            items=items,
            timestamps=ts,
            types=type_codes.astype(np.int64),
            type_names=tuple(type_names.tolist()),
            weights=per_type[type_codes] if n else np.zeros(0, dtype=np.float32),
            item_text=text,
        )

    @classmethod
    def from_indices(
        cls,
        users: IntArray,
        items: IntArray,
        timestamps_ms: IntArray,
        *,
        n_users: int | None = None,
        n_items: int | None = None,
        types: IntArray | None = None,
        type_names: tuple[str, ...] = ("view",),
        type_weights: Mapping[str, float] | None = None,
        item_text: tuple[str, ...] | None = None,
    ) -> Interactions:
        """Build from dense indices; external ids are the indices as strings.

        The fast path for generated data (benches, tests): no string hashing of
        a million ids.
        """
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        n_users = int(users.max()) + 1 if n_users is None else n_users
        n_items = int(items.max()) + 1 if n_items is None else n_items
        codes = np.zeros(len(users), dtype=np.int64) if types is None else np.asarray(types)
        weights_by_type = {**DEFAULT_TYPE_WEIGHTS, **(type_weights or {})}
        per_type = np.array([weights_by_type.get(t, 1.0) for t in type_names], dtype=np.float32)
        return cls(
            user_ids=np.arange(n_users).astype(str),
            item_ids=np.arange(n_items).astype(str),
            users=users,
            items=items,
            timestamps=np.asarray(timestamps_ms, dtype=np.int64),
            types=codes.astype(np.int64),
            type_names=type_names,
            weights=per_type[codes],
            item_text=item_text,
        )

    @classmethod
    def from_movielens(cls, path: str | Path, *, with_item_text: bool = True) -> Interactions:
        """Read MovieLens ``u.data``; every rating counts as one implicit interaction.

        Titles and genres come from ``u.item`` in the same folder when it exists,
        so the content model has text to work with; nothing else depends on it.
        """
        path = Path(path)
        try:
            raw = np.loadtxt(path, dtype=np.int64, delimiter="\t", ndmin=2)
        except (OSError, ValueError) as exc:
            raise InteractionsError(f"cannot read MovieLens ratings from {path}: {exc}") from exc
        if raw.shape[1] != 4:
            raise InteractionsError(f"{path}: expected 4 tab-separated columns")
        text = _read_movielens_items(path.parent) if with_item_text else None
        return cls.from_arrays(
            raw[:, 0],
            raw[:, 1],
            raw[:, 3] * 1000,
            np.full(len(raw), "rating"),
            item_text=text,
        )

    @classmethod
    def from_jsonl(
        cls, path: str | Path, *, type_weights: Mapping[str, float] | None = None
    ) -> Interactions:
        """Read relevo events, one JSON object per line; blank lines are skipped."""
        records: list[dict[str, Any]] = []
        with Path(path).open("rb") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise InteractionsError(f"{path}:{lineno}: not JSON: {exc}") from exc
                if not isinstance(obj, dict):
                    raise InteractionsError(f"{path}:{lineno}: expected a JSON object")
                obj["_where"] = f"{path}:{lineno}"
                records.append(obj)
        return cls.from_records(records, type_weights=type_weights)

    @classmethod
    def from_records(
        cls,
        records: Iterable[Mapping[str, Any]] | Any,
        *,
        type_weights: Mapping[str, float] | None = None,
    ) -> Interactions:
        """Build from a pyarrow Table or dicts with ``user_id, item_id, type, timestamp``.

        Events without an ``item_id`` (a search, a page view) carry no item
        preference and are dropped.
        """
        if hasattr(records, "column_names") and hasattr(records, "to_pydict"):
            return _from_arrow(records, type_weights)
        users: list[str] = []
        items: list[str] = []
        types: list[str] = []
        times: list[int] = []
        for rec in records:
            where = rec.get("_where", "record")
            item = rec.get("item_id")
            if item is None:
                continue
            user = rec.get("user_id")
            if user is None:
                raise InteractionsError(f"{where}: missing 'user_id'")
            users.append(str(user))
            items.append(str(item))
            types.append(str(rec.get("type", "view")))
            times.append(parse_timestamp_ms(rec.get("timestamp"), where=str(where)))
        return cls.from_arrays(
            np.array(users, dtype=str),
            np.array(items, dtype=str),
            np.array(times, dtype=np.int64),
            np.array(types, dtype=str),
            type_weights=type_weights,
        )


def load_interactions(path: str | Path) -> Interactions:
    """Read a dataset by its shape: ``.jsonl``/``.json`` is relevo events, else ``u.data``."""
    path = Path(path)
    if path.suffix in {".jsonl", ".json", ".ndjson"}:
        return Interactions.from_jsonl(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return Interactions.from_records(pq.read_table(path))
    return Interactions.from_movielens(path)


def parse_timestamp_ms(value: Any, *, where: str = "record") -> int:
    """Epoch milliseconds from an int (already ms) or an ISO-8601 string with a zone.

    Naive timestamps are refused: relevo keeps aware datetimes only, and guessing a
    zone would silently shift a replay by hours.
    """
    if isinstance(value, bool):
        raise InteractionsError(f"{where}: timestamp must be epoch ms or ISO-8601, not a bool")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InteractionsError(f"{where}: bad ISO-8601 timestamp {value!r}") from exc
    else:
        raise InteractionsError(f"{where}: missing or invalid 'timestamp'")
    if dt.tzinfo is None:
        raise InteractionsError(f"{where}: timestamp {value!r} has no time zone")
    return round(dt.timestamp() * 1000)


def _first_seen_codes(values: IdArray) -> tuple[IdArray, IntArray]:
    """Unique values in order of first appearance, and each value's code."""
    uniq, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return uniq[order], rank[inverse].astype(np.int64)


def _from_arrow(table: Any, type_weights: Mapping[str, float] | None) -> Interactions:
    import pyarrow as pa
    import pyarrow.compute as pc

    missing = {"user_id", "item_id", "timestamp"} - set(table.column_names)
    if missing:
        raise InteractionsError(f"table lacks columns {sorted(missing)}")
    table = table.filter(pc.is_valid(table["item_id"]))
    ts = table["timestamp"]
    if pa.types.is_timestamp(ts.type):
        if ts.type.tz is None:
            raise InteractionsError("timestamp column has no time zone")
        ts_ms = pc.cast(ts, pa.timestamp("ms", tz=ts.type.tz)).cast(pa.int64())
    elif pa.types.is_integer(ts.type):
        ts_ms = ts.cast(pa.int64())
    else:
        raise InteractionsError(f"unsupported timestamp column type {ts.type}")
    types = (
        table["type"].to_numpy(zero_copy_only=False).astype(str)
        if "type" in table.column_names
        else None
    )
    return Interactions.from_arrays(
        table["user_id"].to_numpy(zero_copy_only=False).astype(str),
        table["item_id"].to_numpy(zero_copy_only=False).astype(str),
        ts_ms.to_numpy(zero_copy_only=False),
        types,
        type_weights=type_weights,
    )


def _read_movielens_items(folder: Path) -> dict[str, str] | None:
    """Title and genre names per MovieLens item id, or None when ``u.item`` is absent."""
    item_file = folder / "u.item"
    if not item_file.is_file():
        return None
    genres: list[str] = []
    genre_file = folder / "u.genre"
    if genre_file.is_file():
        for line in genre_file.read_text(encoding="latin-1").splitlines():
            if "|" in line:
                genres.append(line.split("|")[0])
    text: dict[str, str] = {}
    for line in item_file.read_text(encoding="latin-1").splitlines():
        parts = line.split("|")
        if len(parts) < 6:
            continue
        flags = parts[5:]
        names = [
            genres[k] if k < len(genres) else f"genre{k}" for k, f in enumerate(flags) if f == "1"
        ]
        # Genres are repeated as tokens with a prefix so they never collide with title words.
        text[parts[0]] = " ".join([parts[1], *(f"genre_{g.replace(' ', '_')}" for g in names)])
    return text
