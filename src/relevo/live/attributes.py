"""Content neighbours from item attributes, from an item's first upsert.

Trained content models only know items that existed at training time. This index
knows every item the moment it is upserted: each attribute becomes a *token*
(`c:<category>`, `b:<brand>`, `t:<tag>`, `w:<word>` for words of the title and
text), and each token keeps the items that carry it (a decayed sorted set used as
a bounded posting list: the `POSTING_MAX` most recently upserted items per token).

Similarity is a TF-IDF cosine over tokens: a token weighs its field's weight
(`FIELD_WEIGHTS`: sharing a category says more than sharing a word) times its
smoothed IDF, ``1 + ln((1 + N) / (1 + df))``, with `df` the posting size (capped,
so very common tokens all count as common). Candidates are the items of the
query item's postings; the cosine needs their own tokens, computed from their
catalog documents, which the caller reads anyway (stock, category filters). Tokens
of a candidate not in the query's postings get the IDF of a rare token, so the
score is an approximation that never overrates a candidate. An item that changes
attributes leaves the postings of the tokens it no longer carries, and a removed item
(`DELETE /v1/items/{id}`) all of its own (`CatalogChange.left`): a posting keeps its
room for the items that carry its token.

An item joins a token's posting once, when it first carries the token (its first
upsert, or one that gave it the token), as of that upsert's ``updated_at``: upserts that
change its stock or price leave its postings alone (`catalog_change`). Were each upsert
added again, an item a shop's ERP updated every hour would weigh hundreds in its postings
after a week, and a new item, weighing one, would be the first trimmed from a posting
already full (`POSTING_MAX`): no attribute neighbours for exactly the items that need
them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from relevo.catalog import REMOVED
from relevo.live.accumulator import DecayedBatch
from relevo.store import keys

FIELD_WEIGHTS = {"c": 3.0, "t": 2.0, "b": 1.5, "w": 1.0}
POSTING_MAX = 500
POSTING_HALF_LIFE_MS = 90 * 86_400_000
MAX_WORDS = 40
_WORD = re.compile(r"[^\W\d_]{3,}")


def item_tokens(item: Mapping[str, Any]) -> dict[str, float]:
    """Token → field weight for a catalog item.

    >>> item_tokens({"item_id": "x", "category": "Shoes", "tags": ["trail"],
    ...              "title": "The trail runner"})
    {'c:shoes': 3.0, 't:trail': 2.0, 'w:trail': 1.0, 'w:runner': 1.0}
    """
    tokens: dict[str, float] = {}
    if item.get("category"):
        tokens["c:" + str(item["category"]).lower()] = FIELD_WEIGHTS["c"]
    for tag in item.get("tags") or ():
        tokens["t:" + str(tag).lower()] = FIELD_WEIGHTS["t"]
    if item.get("brand"):
        tokens["b:" + str(item["brand"]).lower()] = FIELD_WEIGHTS["b"]
    text = " ".join(str(item.get(name) or "") for name in ("title", "text")).lower()
    words = 0
    for word in _WORD.findall(text):
        token = "w:" + word
        if word in ENGLISH_STOP_WORDS or token in tokens:
            continue
        tokens[token] = FIELD_WEIGHTS["w"]
        words += 1
        if words == MAX_WORDS:
            break
    return tokens


@dataclass(frozen=True, slots=True)
class CatalogChange:
    """An applied batch of catalog upserts and removals, as what is derived from the
    catalog sees it."""

    items: Sequence[dict[str, Any]]
    """The documents to write: each upserted item's last state, with its ``created_at``
    (`listed`)."""
    removed: Sequence[str]
    """The items whose last state is removed: their documents go."""
    joined: Mapping[str, Mapping[str, int]]
    """Item id → the tokens whose postings it joins (the tokens it did not carry before),
    each with the ``updated_at`` of the upsert that gave it."""
    left: Mapping[str, Sequence[str]]
    """Item id → the tokens whose postings it leaves: those it carried before and no
    longer does (every token of a removed item)."""
    attributes_changed: bool
    """Whether a new item came, an item went, an item's tokens or its ``created_at``
    changed, or an upsert may be one delivered again (below): the postings, the item
    count, the newest items or a candidate's cosine may differ, so values computed from
    them are stale. False when only other fields changed (stock, price): what a shop's
    stock sync sends.

    An upsert whose document is the one stored, ``updated_at`` included, counts as a
    change: it may be a delivery again of one whose first delivery wrote the documents
    and then stopped (a crash) before saying what changed, and that first change cannot
    be told from here. A removal always counts, for the same reason."""

    @property
    def item_ids(self) -> list[str]:
        """Every item the batch upserted or removed."""
        return [*(str(item["item_id"]) for item in self.items), *self.removed]


def listed(item: dict[str, Any], before: Mapping[str, Any] | None) -> dict[str, Any]:
    """`item` with its ``created_at``: as given, else the stored document's (its
    ``updated_at`` for a document written before items had one), else, for a new item,
    its own ``updated_at``.

    >>> stored = {"item_id": "s", "updated_at": 5, "created_at": 2}
    >>> listed({"item_id": "s", "updated_at": 9}, stored)
    {'item_id': 's', 'updated_at': 9, 'created_at': 2}
    >>> listed({"item_id": "s", "updated_at": 9}, None)["created_at"]
    9
    """
    if "created_at" in item:
        return item
    if before is None:
        return {**item, "created_at": item["updated_at"]}
    return {**item, "created_at": listed_at(before)}


def listed_at(document: Mapping[str, Any]) -> Any:
    """A stored document's ``created_at``: its ``updated_at`` if written before it had one
    (the time `keys.ITEMS_INDEX` has for it)."""
    return document.get("created_at", document["updated_at"])


def catalog_change(
    items: Sequence[dict[str, Any]], previous: Mapping[str, Mapping[str, Any]]
) -> CatalogChange:
    """What applying `items` (upserts and removals, in log order) changes, given the
    documents they replace (`previous`, read before they are written: the postings are
    written first, so an upsert delivered again after a crash finds the same `previous`
    and joins the same postings).

    >>> shoe = {"item_id": "s", "category": "shoes", "in_stock": True, "updated_at": 1}
    >>> stored = {**shoe, "created_at": 1}
    >>> change = catalog_change([{**shoe, "in_stock": False, "updated_at": 2}], {"s": stored})
    >>> change.joined, change.attributes_changed, change.items[0]["created_at"]
    ({}, False, 1)
    >>> change = catalog_change([{**shoe, "tags": ["trail"], "updated_at": 7}], {"s": stored})
    >>> change.joined, change.attributes_changed
    ({'s': {'t:trail': 7}}, True)
    >>> catalog_change([{**shoe, "updated_at": 5}], {}).joined
    {'s': {'c:shoes': 5}}
    >>> catalog_change([shoe], {"s": stored}).attributes_changed  # the same: again?
    True
    >>> change.left  # the tag changed: no token left
    {}
    >>> catalog_change([{**shoe, "category": "boots", "updated_at": 8}], {"s": stored}).left
    {'s': ['c:shoes']}
    >>> gone = catalog_change([{"item_id": "s", "updated_at": 9, REMOVED: True}], {"s": stored})
    >>> gone.items, gone.removed, gone.left, gone.attributes_changed
    ([], ['s'], {'s': ['c:shoes']}, True)
    """
    joined: dict[str, dict[str, int]] = {}  # item id → token → when it joined
    changed = False
    replaced: dict[str, Mapping[str, Any] | None] = dict(previous)  # None: removed
    original: dict[str, dict[str, float]] = {}  # item id → its tokens before `items`
    last: dict[str, dict[str, Any] | None] = {}  # item id → its last state in `items`
    carried: dict[str, dict[str, float]] = {}  # item id → the tokens of its last state
    for item in items:
        item_id = str(item["item_id"])
        before = replaced.get(item_id)
        old = carried.get(item_id)
        if old is None:
            old = original[item_id] = item_tokens(before) if before is not None else {}
        if item.get(REMOVED):
            replaced[item_id] = last[item_id] = None
            carried[item_id] = {}
            changed = True
            continue
        document = listed(item, before)
        tokens = item_tokens(document)
        replaced[item_id] = last[item_id] = document
        carried[item_id] = tokens
        if (
            before is not None
            and old == tokens
            and listed_at(before) == document["created_at"]
            and before != document
        ):
            continue
        changed = True
        for token in tokens:
            if token not in old:
                joined.setdefault(item_id, {}).setdefault(token, int(item["updated_at"]))
    joined = {  # (a token given and taken away again within `items` is not joined)
        item_id: kept
        for item_id, tokens in joined.items()
        if (kept := {token: at for token, at in tokens.items() if token in carried[item_id]})
    }
    left = {
        item_id: gone
        for item_id, now in carried.items()
        if (gone := [token for token in original[item_id] if token not in now])
    }
    documents = [document for document in last.values() if document is not None]
    removed = [item_id for item_id, document in last.items() if document is None]
    return CatalogChange(documents, removed, joined, left, changed)


def index_items(batch: DecayedBatch, change: CatalogChange) -> None:
    """Add upserted items to the postings they join, as of when they joined them."""
    for item_id, tokens in change.joined.items():
        for token, at_ms in tokens.items():
            batch.add(keys.attribute_key(token), item_id, 1.0, at_ms)


def unindexed(change: CatalogChange) -> dict[str, list[str]]:
    """Posting key → the items that leave it (`Store.decayed_remove`)."""
    removals: dict[str, list[str]] = {}
    for item_id, tokens in change.left.items():
        for token in tokens:
            removals.setdefault(keys.attribute_key(token), []).append(item_id)
    return removals


def idf(df: int, n_items: int) -> float:
    return 1.0 + math.log((1 + n_items) / (1 + df))


def candidates(
    query: Mapping[str, float], postings: Sequence[Sequence[str]], n_items: int, limit: int
) -> tuple[list[str], dict[str, float]]:
    """The `limit` items sharing the most weight with `query`, and the IDF of its tokens.

    `postings[j]` lists the items of the j-th token of `query` (in its order).
    """
    n = max(n_items, max((len(p) for p in postings), default=0))
    idfs: dict[str, float] = {}
    shared: dict[str, float] = {}
    for (token, weight), members in zip(query.items(), postings, strict=True):
        idfs[token] = idf(len(members), n)
        value = (weight * idfs[token]) ** 2
        for member in members:
            shared[member] = shared.get(member, 0.0) + value
    # By member, then (stable) by weight: the order of the key (-weight, member) without
    # a Python key function per member (hundreds of them).
    best = sorted(shared)
    best.sort(key=shared.__getitem__, reverse=True)
    return best[:limit], idfs


def cosine(
    query: Mapping[str, float],
    other: Mapping[str, float],
    idfs: Mapping[str, float],
    rare_idf: float,
) -> float:
    """TF-IDF cosine of two token sets; tokens without a known IDF count as rare.

    Plain loops rather than generator sums: it runs for every attribute candidate of a
    recommendation (same arithmetic, same order, so the same floats).

    >>> round(cosine({"a": 1.0, "b": 2.0}, {"b": 1.0, "c": 1.0}, {"a": 1.0, "b": 1.5}, 2.0), 6)
    0.56921
    """
    dot = norm_q = norm_o = 0.0
    for token, weight in query.items():
        idf_ = idfs.get(token, rare_idf)
        value = weight * idf_
        norm_q += value**2
        found = other.get(token)
        if found is not None:
            dot += value * (found * idf_)
    for token, weight in other.items():
        norm_o += (weight * idfs.get(token, rare_idf)) ** 2
    norm_q, norm_o = math.sqrt(norm_q), math.sqrt(norm_o)
    return dot / (norm_q * norm_o) if norm_q and norm_o else 0.0


class Cosine:
    """`cosine` of one query against many items, with the query's side computed once.

    Why: a query item's attribute neighbours are a few hundred candidates, and `cosine`
    weighed the query's tokens (and their norm) again for each. The arithmetic is
    `cosine`'s, in the same order, so the floats are the same (property-tested).

    >>> query = Cosine({"a": 1.0, "b": 2.0}, {"a": 1.0, "b": 1.5}, 2.0)
    >>> query({"b": 1.0, "c": 1.0}) == cosine(
    ...     {"a": 1.0, "b": 2.0}, {"b": 1.0, "c": 1.0}, {"a": 1.0, "b": 1.5}, 2.0)
    True
    """

    __slots__ = ("_idfs", "_norm", "_rare", "_terms")

    def __init__(self, query: Mapping[str, float], idfs: Mapping[str, float], rare_idf: float):
        terms = []
        norm = 0.0
        for token, weight in query.items():
            idf_ = idfs.get(token, rare_idf)
            value = weight * idf_
            norm += value**2
            terms.append((token, value, idf_))
        self._terms = tuple(terms)
        self._norm = math.sqrt(norm)
        self._idfs = idfs
        self._rare = rare_idf

    def __call__(self, other: Mapping[str, float]) -> float:
        dot = norm_o = 0.0
        for token, value, idf_ in self._terms:
            found = other.get(token)
            if found is not None:
                dot += value * (found * idf_)
        idfs, rare = self._idfs, self._rare
        for token, weight in other.items():
            norm_o += (weight * idfs.get(token, rare)) ** 2
        norm_q, norm_o = self._norm, math.sqrt(norm_o)
        return dot / (norm_q * norm_o) if norm_q and norm_o else 0.0
