"""Blending sources with per-source weights, keeping which source proposed what.

Sources score on incomparable scales (a LightGBM lambdarank margin, a decayed
co-visitation count, a cosine). A source whose scores are only an order (the
trained models) is fused by rank: an item at rank r (0-based) of a source of
weight w gets ``w · K / (K + r)`` (`K` = 10: the first places matter, the tail
still counts), the idea of reciprocal rank fusion (Cormack et al. 2009) with a
smaller constant. A source whose magnitudes mean something (co-visitation counts:
11 sessions went A → B, 2 went A → C) is fused by strength: ``w · score / best``,
so a clear winner stays one. Per-source weights let a source that knows more about
this moment (the session) lead.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any, TypeVar

from relevo.serving.results import Reason

K = 10.0
T = TypeVar("T")
Entry = tuple[str, float, tuple[Reason, ...]]
"""A ranked item: its id, its blended score and the reasons (sources) behind it."""

_RANK_SHARES: list[float] = []
"""``K / (K + r)`` for the ranks met so far: computed once, not once per candidate."""


def _rank_shares(count: int) -> list[float]:
    while len(_RANK_SHARES) < count:
        _RANK_SHARES.append(K / (K + len(_RANK_SHARES)))
    return _RANK_SHARES


class Blend:
    """Blended scores of items, and the reasons of each as a *combination*: the index of
    its distinct reasons (in the order they first came to it) among the blend's few.

    Why combinations: a blend holds hundreds of candidates from half a dozen sources;
    one int per item (moved along a small table when a source adds a reason) costs less
    than a list of reasons per item, and the answer cache keeps the ints as they are
    (`Ranking`).
    """

    __slots__ = ("_combinations", "_index", "_next", "_ranking", "codes", "scores")

    def __init__(self) -> None:
        self.scores: dict[str, float] = {}
        #: item → its combination (an index into `_combinations`).
        self.codes: dict[str, int] = {}
        self._combinations: list[tuple[Reason, ...]] = []
        self._index: dict[tuple[Reason, ...], int] = {}
        #: (combination, reason) → the combination with that reason too.
        self._next: dict[tuple[int, Reason], int] = {}
        self._ranking: Ranking | None = None

    def add(
        self,
        ranked: Iterable[tuple[str, float]],
        weight: float,
        reason: Reason,
        *,
        exclude: frozenset[str] | set[str] = frozenset(),
        by_score: bool = False,
    ) -> None:
        """Add a source's ranked list (best first); excluded items don't use up ranks.

        `by_score` fuses by strength relative to the best (positive) score instead of
        by rank; the best is the first, as the list is best first (a ``max`` over a source
        of 170 cost ~50 k instructions, three times per decision).

        >>> blend = Blend()
        >>> blend.add([("a", 9.0), ("b", 1.0)], 1.0, Reason("x", None))
        >>> blend.add([("b", 5.0)], 1.0, Reason("y", "v1"))
        >>> [(item, round(score, 3), [r.source for r in why])
        ...  for item, score, why in blend.ranked()]
        [('b', 1.909, ['x', 'y']), ('a', 1.0, ['x'])]
        >>> blend.add([("a", 9.0), ("c", 3.0)], 1.0, Reason("z", None), by_score=True)
        >>> [(item, round(score, 3)) for item, score, _ in blend.ranked()]
        [('a', 2.0), ('b', 1.909), ('c', 0.333)]
        """
        kept = [entry for entry in ranked if entry[0] not in exclude] if exclude else ranked
        if not isinstance(kept, list | tuple):
            kept = list(kept)
        if not kept:
            return
        self._ranking = None
        best: float = kept[0][1] if by_score else 0.0
        scores, codes = self.scores, self.codes  # locals: this runs for every candidate
        fresh = self._extend(-1, reason)
        if not scores and self._first(kept, weight, best, fresh):
            return
        get, setdefault = scores.get, codes.setdefault  # (bound once: fewer instructions)
        moved: dict[int, int] = {}  # combination → with this reason too (this call's share)
        # Two copies of one loop, by score and by rank: a shared loop over a list of shares
        # costs 1.5% more per decision (`bench.decide_cpu --callgrind`), for ~800 candidates.
        # `setdefault` gives a new item `fresh` in the one call that finds it new (most
        # are); an item that came with other reasons moves along the table.
        if best > 0:
            for item, score in kept:
                scores[item] = get(item, 0.0) + weight * (score / best if score > 0.0 else 0.0)
                code = setdefault(item, fresh)
                if code != fresh:  # (seen before, with another reason)
                    if code not in moved:
                        moved[code] = self._extend(code, reason)
                    codes[item] = moved[code]
            return
        for (item, _), share in zip(kept, _rank_shares(len(kept)), strict=False):
            scores[item] = get(item, 0.0) + weight * share
            code = setdefault(item, fresh)
            if code != fresh:  # (seen before, with another reason)
                if code not in moved:
                    moved[code] = self._extend(code, reason)
                codes[item] = moved[code]

    def _first(
        self, kept: Sequence[tuple[str, float]], weight: float, best: float, fresh: int
    ) -> bool:
        """The first source of an empty blend: every item is new, with the sum the loop
        would give (``0.0 + share``) but no lookup per item (a quarter fewer instructions
        per item: ``bench.decide_cpu --callgrind``). False, and nothing added, when an item
        is listed twice (the loop adds its shares up)."""
        if best > 0:
            scores = {
                item: 0.0 + weight * (score / best if score > 0.0 else 0.0) for item, score in kept
            }
        else:
            shares = zip(kept, _rank_shares(len(kept)), strict=False)
            scores = {item: 0.0 + weight * share for (item, _), share in shares}
        if len(scores) < len(kept):
            return False
        self.scores, self.codes = scores, dict.fromkeys(scores, fresh)
        return True

    def _extend(self, code: int, reason: Reason) -> int:
        """The combination of `code` (-1: none) with `reason` added (unchanged if it has it)."""
        found = self._next.get((code, reason))
        if found is not None:
            return found
        reasons = self._combinations[code] if code >= 0 else ()
        if reason not in reasons:
            reasons = (*reasons, reason)
        found = self._index.get(reasons)
        if found is None:
            found = self._index[reasons] = len(self._combinations)
            self._combinations.append(reasons)
        self._next[(code, reason)] = found
        return found

    def ranking(self) -> Ranking:
        """Items by blended score, best first (ties by item id, so answers are stable)."""
        if self._ranking is None:
            scores, codes = self.scores, self.codes
            # By score alone (stable, without a Python key function per item); `Ranking`
            # orders equal scores by id where it is read.
            order = list(scores)
            order.sort(key=scores.__getitem__, reverse=True)
            self._ranking = Ranking(
                tuple(order),
                _values(scores, order),
                _values(codes, order),
                tuple(self._combinations),
            )
        return self._ranking

    def best(self, count: int) -> set[str]:
        """The `count` best items, as a set: no sorting when all are, and then the set is
        made from the blend's dict, whose hashes it reuses (a decision asks the catalog
        cache for these items' documents: `CatalogCache.documents`)."""
        if len(self.scores) <= count:
            return set(self.scores)
        return set(self.ranking().top(count))

    def ranked(self) -> list[Entry]:
        """`ranking` as a list of entries."""
        return list(self.ranking())


def _values(mapping: Mapping[Any, T] | Sequence[T], order: Sequence[Any]) -> tuple[T, ...]:
    """``tuple(map(mapping.__getitem__, order))``, with one itemgetter call instead of a
    call per item (a seventh of a ranking's instructions); `mapping` may be a tuple (and
    `order` its indices)."""
    if len(order) < 2:  # (an itemgetter of one key returns the value, not a tuple)
        return tuple(map(mapping.__getitem__, order))
    values: tuple[T, ...] = itemgetter(*order)(mapping)
    return values


class Ranking:
    """A blend's ranking, compact, for the answer cache: items by score, best first, equal
    scores by item id.

    Why compact: a cached `Blend` (or a list of its entries) holds a few Python objects
    per item that the cyclic garbage collector walks at every full collection; thousands
    of cached answers of hundreds of items each made those collections cost a fifth of a
    decision (``bench/decide_cpu.py``). Here an answer is a few tuples of strings, floats
    and ints, which the collector stops tracking, and each item's reasons are the index
    of its combination among the answer's few distinct ones.

    Why equal scores are put in id order only where read (`_settle`): a decision reads the
    first fifty or so of some 300 items, and sorting all of them by id first (so that a
    stable sort by score left equal scores in id order) cost more than this (5.34 M ->
    5.24 M instructions per decision, ``bench.decide_cpu --callgrind``). The order is the
    same: within a run of equal scores, by id; the runs already by score.

    >>> blend = Blend()
    >>> blend.add([("a", 9.0), ("b", 1.0)], 1.0, Reason("x", None))
    >>> blend.add([("b", 5.0)], 1.0, Reason("y", "v1"))
    >>> ranking = blend.ranking()
    >>> list(ranking) == blend.ranked(), ranking.top(1), ranking.codes
    (True, ['b'], (2, 0))
    >>> tied = Ranking(("c", "a", "b", "d"), (2.0, 1.0, 1.0, 0.5), (0, 1, 2, 3), ())
    >>> tied.top(2), tied.items, tied.codes
    (['c', 'a'], ('c', 'a', 'b', 'd'), (0, 1, 2, 3))
    >>> Ranking(("c", "b", "a"), (1.0, 1.0, 1.0), (0, 1, 2), ()).top(1)
    ['a']
    """

    __slots__ = ("_codes", "_items", "_settled", "combinations", "scores")

    def __init__(
        self,
        items: tuple[str, ...],
        scores: tuple[float, ...],
        codes: tuple[int, ...],
        combinations: tuple[tuple[Reason, ...], ...],
    ) -> None:
        """`items` by score, best first, equal scores in any order; `scores` and `codes`
        (an index into `combinations`) in that order."""
        self._items, self.scores, self._codes = items, scores, codes
        self.combinations = combinations
        #: How many of the first items are in their final order (whole runs of equal scores).
        self._settled = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def items(self) -> tuple[str, ...]:
        self._settle(len(self._items))
        return self._items

    @property
    def codes(self) -> tuple[int, ...]:
        self._settle(len(self._items))
        return self._codes

    def top(self, count: int) -> list[str]:
        self._settle(count)
        return list(self._items[:count])

    def __iter__(self) -> Iterator[Entry]:
        """The entries, best first, as `Blend.ranked` gave them."""
        return chain.from_iterable(self._stretches())

    def _stretches(self) -> Iterator[Iterator[Entry]]:
        """The entries a stretch at a time (twice what was read so far), each settled
        when reached, then zipped in C: a generator resumed per entry cost ~20 k
        instructions more for the ~50 entries a decision reads (docs/performance.md)."""
        combinations, start = self.combinations, 0
        while start < len(self._items):
            self._settle(max(2 * start, 64))
            end = self._settled
            yield zip(
                self._items[start:end],
                self.scores[start:end],
                _values(combinations, self._codes[start:end]),
                strict=True,
            )
            start = end

    def _settle(self, count: int) -> None:
        """Put the first `count` items (and the rest of the run of equal scores the last
        of them is in) in their final order: each run of equal scores by id."""
        start, size, scores = self._settled, len(self._items), self.scores
        if count <= start or start >= size:
            return
        end = min(count, size)
        while end < size and scores[end] == scores[end - 1]:
            end += 1
        unordered = self._unordered_runs(start, end)
        if unordered:
            self._order(start, end, unordered)
        self._settled = end

    def _unordered_runs(self, start: int, end: int) -> list[slice]:
        """The runs of equal scores among items `start` to `end` (positions from `start`)
        that are not in id order yet: nearly always none, as a blend's sources list equal
        scores by id and its sort is stable (a ranking then is left as it is, not copied)."""
        items, values = self._items, self.scores[start:end]
        unordered: list[slice] = []
        run = 0  # the first position (from `start`) of the current run of equal scores
        for index in range(1, end - start + 1):
            if index < end - start and values[index] == values[run]:
                continue
            if index - run > 1:
                ids = items[start + run : start + index]
                if list(ids) != sorted(ids):
                    unordered.append(slice(run, index))
            run = index
        return unordered

    def _order(self, start: int, end: int, runs: list[slice]) -> None:
        """Put each of `runs` (of items `start` to `end`) in id order, with its items'
        scores and codes."""
        items, codes = list(self._items[start:end]), list(self._codes[start:end])
        values = list(self.scores[start:end])  # (equal, yet 0.0 and -0.0 stay with their items)
        for run in runs:  # (ids are distinct: the triples sort by id)
            triples = sorted(zip(items[run], codes[run], values[run], strict=True))
            items[run] = [item for item, _, _ in triples]
            codes[run] = [code for _, code, _ in triples]
            values[run] = [value for _, _, value in triples]
        self._items = self._items[:start] + tuple(items) + self._items[end:]
        self._codes = self._codes[:start] + tuple(codes) + self._codes[end:]
        self.scores = self.scores[:start] + tuple(values) + self.scores[end:]
