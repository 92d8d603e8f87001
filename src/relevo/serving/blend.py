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

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from relevo.serving.results import Reason

K = 10.0
Entry = tuple[str, float, tuple[Reason, ...]]
"""A ranked item: its id, its blended score and the reasons (sources) behind it."""


@dataclass
class Blend:
    scores: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, list[Reason]] = field(default_factory=dict)

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
        by rank.

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
        kept = [(item, score) for item, score in ranked if item not in exclude]
        best = max((score for _, score in kept), default=0.0) if by_score else 0.0
        scores, reasons = self.scores, self.reasons  # locals: this runs for every candidate
        for rank, (item, score) in enumerate(kept):
            share = max(score, 0.0) / best if best > 0 else K / (K + rank)
            scores[item] = scores.get(item, 0.0) + weight * share
            why = reasons.get(item)
            if why is None:
                reasons[item] = [reason]
            elif reason not in why:
                why.append(reason)

    def ranked(self) -> list[Entry]:
        """Items by blended score, best first (ties by item id, so answers are stable)."""
        scores, reasons = self.scores, self.reasons
        # By id, then (stable) by score: the order of the key (-score, id), without a
        # Python key function per item.
        order = sorted(scores)
        order.sort(key=scores.__getitem__, reverse=True)
        return [(item, scores[item], tuple(reasons[item])) for item in order]


@dataclass(frozen=True, slots=True)
class Ranking:
    """A blend's ranking, compact, for the answer cache.

    Why: a cached `Blend` (or a list of its entries) holds a few Python objects per item
    that the cyclic garbage collector walks at every full collection; thousands of cached
    answers of hundreds of items each made those collections cost a fifth of a decision
    (``bench/decide_cpu.py``). Here an answer is a few tuples of strings, floats and ints,
    which the collector stops tracking, and each item's reasons are the index of its
    combination among the answer's few distinct ones.

    >>> blend = Blend()
    >>> blend.add([("a", 9.0), ("b", 1.0)], 1.0, Reason("x", None))
    >>> blend.add([("b", 5.0)], 1.0, Reason("y", "v1"))
    >>> ranking = Ranking.of(blend.ranked())
    >>> list(ranking) == blend.ranked(), ranking.top(1), len(ranking.combinations)
    (True, ['b'], 2)
    """

    items: tuple[str, ...]
    scores: tuple[float, ...]
    codes: tuple[int, ...]
    combinations: tuple[tuple[Reason, ...], ...]

    @classmethod
    def of(cls, ranked: Sequence[Entry]) -> Ranking:
        if not ranked:
            return cls((), (), (), ())
        items, scores, whys = zip(*ranked, strict=True)
        # Combinations told apart by the identity of their reasons (hashing ids is cheap;
        # equal reasons held twice only make one more combination, decoded the same).
        codes: dict[tuple[int, ...], int] = {}
        combinations: list[tuple[Reason, ...]] = []
        numbered = []
        for why in whys:
            key = tuple(map(id, why))
            code = codes.get(key)
            if code is None:
                code = codes[key] = len(combinations)
                combinations.append(why)
            numbered.append(code)
        return cls(items, scores, tuple(numbered), tuple(combinations))

    def top(self, count: int) -> list[str]:
        return list(self.items[:count])

    def __iter__(self) -> Iterator[Entry]:
        """The entries, best first, as `Blend.ranked` gave them."""
        combinations = self.combinations
        for item, score, code in zip(self.items, self.scores, self.codes, strict=True):
            yield item, score, combinations[code]
