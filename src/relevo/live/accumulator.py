"""One decayed add per key per batch, however many events of the batch touch it.

Weights of a batch come at different event times; each is decayed to the batch's
newest time before summing, which is exact for exponential decay
(``w·2^(-(t_max - t)/h)`` is what the store would have added for it), and turns
hundreds of increments of a hot key (the overall trending set) into one write.
"""

from __future__ import annotations

from collections import defaultdict

from relevo.store.base import DecayedAdd


class DecayedBatch:
    """Collects (key, member, weight, time) and emits `DecayedAdd`s for one half-life.

    >>> batch = DecayedBatch(half_life_ms=1000)
    >>> batch.add("k", "a", 1.0, at_ms=0)
    >>> batch.add("k", "a", 1.0, at_ms=1000)
    >>> batch.adds()
    [DecayedAdd(key='k', weights={'a': 1.5}, at_ms=1000)]
    """

    def __init__(self, half_life_ms: int) -> None:
        self.half_life_ms = half_life_ms
        self._entries: dict[str, list[tuple[str, float, int]]] = defaultdict(list)

    def add(self, key: str, member: str, weight: float, at_ms: int) -> None:
        if weight > 0:
            self._entries[key].append((member, weight, at_ms))

    def adds(self) -> list[DecayedAdd]:
        """One add per key. A weight at the key's newest time is added as it is: its decay
        factor is exactly 1.0 (``2.0 ** -0.0``), so the power is not computed; the sums are
        the same doubles, in the same order."""
        out = []
        half_life = self.half_life_ms
        for key, entries in self._entries.items():
            newest = max([at for _, _, at in entries])
            weights: dict[str, float] = {}
            for member, weight, at in entries:
                if at != newest:
                    weight *= 2.0 ** (-(newest - at) / half_life)
                weights[member] = weights.get(member, 0.0) + weight
            out.append(DecayedAdd(key, weights, newest))
        return out
