"""Counting keys per kind and sampling some to measure: shared by the backends' `usage`."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from relevo.store.base import KindUsage, StoreUsage
from relevo.store.keys import is_user_kind, key_kind


class UsageTally:
    """Counts keys per kind and keeps a uniform sample of each kind (reservoir sampling).

    >>> tally = UsageTally(sample_per_kind=2)
    >>> tally.add(["{u:1}:profile", "{u:2}:profile", "{u:3}:profile", "item:1"])
    >>> sorted((kind, len(sample)) for kind, sample in tally.samples.items())
    [('items', 1), ('profile', 2)]
    >>> sizes = {"{u:1}:profile": 200, "{u:2}:profile": 200, "{u:3}:profile": 200}
    >>> tally.measured(sizes, backend="x").kinds["profile"].bytes  # 2 measured, 3 counted
    600
    """

    def __init__(self, sample_per_kind: int, seed: int = 0) -> None:
        self.sample_per_kind = max(0, sample_per_kind)
        self.kinds: dict[str, KindUsage] = {}
        self.samples: dict[str, list[str]] = {}
        self._random = random.Random(seed)

    def add(self, keys: Iterable[str], without_ttl: Iterable[bool] | None = None) -> None:
        flags = iter(without_ttl) if without_ttl is not None else None
        for key in keys:
            kind = key_kind(key)
            usage = self.kinds.get(kind)
            if usage is None:
                usage = self.kinds[kind] = KindUsage()
                self.samples[kind] = []
            usage.keys += 1
            if flags is not None and next(flags):
                usage.without_ttl += 1
            sample = self.samples[kind]
            if len(sample) < self.sample_per_kind:
                sample.append(key)
            elif self.sample_per_kind:
                slot = self._random.randrange(usage.keys)
                if slot < self.sample_per_kind:
                    sample[slot] = key

    def sampled_keys(self) -> list[str]:
        return [key for sample in self.samples.values() for key in sample]

    def measured(self, sizes: dict[str, int], backend: str) -> StoreUsage:
        """The usage, with each kind's bytes extrapolated from its measured sample."""
        for kind, usage in self.kinds.items():
            found = [sizes[key] for key in self.samples[kind] if key in sizes]
            usage.sampled = len(found)
            if found:
                usage.bytes = round(sum(found) / len(found) * usage.keys)
        ordered = dict(sorted(self.kinds.items(), key=lambda pair: -pair[1].bytes))
        return StoreUsage(backend=backend, kinds=ordered, sample_per_kind=self.sample_per_kind)


def usage_report(usage: StoreUsage) -> dict[str, Any]:
    """The usage as JSON (the API's and `relevo store stats --json`'s shape)."""
    kinds = {
        kind: {
            "keys": entry.keys,
            "bytes": entry.bytes,
            "sampled": entry.sampled,
            "exact": entry.exact,
            "without_ttl": entry.without_ttl,
            "per_user": is_user_kind(kind),
        }
        for kind, entry in usage.kinds.items()
    }
    return {
        "backend": usage.backend,
        "measure": usage.measure,
        "sample_per_kind": usage.sample_per_kind,
        "kinds": kinds,
        "totals": {
            "keys": sum(entry.keys for entry in usage.kinds.values()),
            "bytes": sum(entry.bytes for entry in usage.kinds.values()),
            "user_keys": sum(e.keys for k, e in usage.kinds.items() if is_user_kind(k)),
            "user_keys_without_ttl": sum(
                e.without_ttl for k, e in usage.kinds.items() if is_user_kind(k)
            ),
        },
        "memory": {
            "used_memory": usage.memory_bytes,
            "source": usage.memory_source,
            "nodes": usage.nodes,
        },
    }
