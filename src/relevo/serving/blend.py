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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from relevo.serving.results import Reason

K = 10.0


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
        for rank, (item, score) in enumerate(kept):
            share = max(score, 0.0) / best if best > 0 else K / (K + rank)
            self.scores[item] = self.scores.get(item, 0.0) + weight * share
            why = self.reasons.setdefault(item, [])
            if reason not in why:
                why.append(reason)

    def ranked(self) -> list[tuple[str, float, Sequence[Reason]]]:
        """Items by blended score, best first (ties by item id, so answers are stable)."""
        order = sorted(self.scores, key=lambda item: (-self.scores[item], item))
        return [(item, self.scores[item], tuple(self.reasons[item])) for item in order]
