"""Per-rule statistics, summed across processes: evaluations, fires, errors, last fired.

Each process counts in memory (`RuleStatsBook`) and adds its counts to one store
map every few seconds, so the hot path never waits on a counter.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from relevo.clock import to_iso
from relevo.rules.engine import ItemAdjustments, RuleOutcome, RuleStatsBook
from relevo.store.base import Store

STATS = "rules:stats"
_COUNTS = ("evaluations", "fires", "errors")


class RuleStatsRecorder:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending = RuleStatsBook()

    def record(self, outcome: RuleOutcome | ItemAdjustments) -> None:
        """Count the outcome in memory (cheap: the book sums per rule when flushed)."""
        if outcome.evaluated:
            self._pending.record(outcome)

    def record_all(self, outcomes: Iterable[RuleOutcome]) -> None:
        """`record` each of an applied batch's outcomes (one call for all: an event's)."""
        record = self._pending.record
        for outcome in outcomes:
            if outcome.evaluated:
                record(outcome)

    async def flush(self) -> None:
        pending, self._pending = self._pending, RuleStatsBook()
        counts: dict[str, int] = {}
        latest: dict[str, bytes] = {}
        for rule_id, stats in pending.to_dict().items():
            for name in _COUNTS:
                if stats[name]:
                    counts[f"{rule_id}|{name}"] = stats[name]
            if stats["last_fired_ms"] is not None:
                latest[f"{rule_id}|last_fired_ms"] = str(stats["last_fired_ms"]).encode()
            if stats["last_error"] is not None:
                latest[f"{rule_id}|last_error"] = stats["last_error"].encode()
        try:
            await self.store.map_incr(STATS, counts)
            await self.store.map_set(STATS, latest)
        except BaseException:
            self._pending.merge(pending)  # keep the counts for the next flush
            raise

    async def read(self) -> dict[str, dict[str, Any]]:
        """Every rule's statistics (flushed by all processes, plus this one's pending)."""
        await self.flush()
        found: dict[str, dict[str, Any]] = {}
        for field, value in (await self.store.map_all(STATS)).items():
            rule_id, _, name = field.rpartition("|")
            entry = found.setdefault(
                rule_id,
                {"evaluations": 0, "fires": 0, "errors": 0, "last_fired": None, "last_error": None},
            )
            if name in _COUNTS:
                entry[name] = int(value)
            elif name == "last_fired_ms":
                entry["last_fired"] = to_iso(int(value))
            elif name == "last_error":
                entry["last_error"] = value.decode()
        return dict(sorted(found.items()))
