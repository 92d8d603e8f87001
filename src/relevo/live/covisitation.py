"""Live co-visitation: "touched A, then B" within a session, per item, time-decayed.

For each new event on item B, the user's previous distinct items *of the same
session*, A1 (the newest) ... Aw, add ``weight / j`` to A_j → B and
``backward_weight · weight / j`` to B → A_j: the scheme of the offline
`relevo.models.covisitation.CovisitationRecommender`, but restricted to sessions
(intent changes between visits) and decayed in event time instead of refitted.
Items bought together in one event are each other's neighbours.

Bounds: each item keeps its `MAX_NEIGHBOURS` strongest neighbours (a decayed
sorted set, trimmed on every write) and expires `TTL_MS` after its last update,
so the store holds at most (active items x MAX_NEIGHBOURS) entries.
"""

from __future__ import annotations

from typing import Any

from relevo.features.profile import ProfileState
from relevo.live.accumulator import DecayedBatch
from relevo.store import keys

WINDOW = 5
"""How many previous items of the session an event pairs with."""
BACKWARD_WEIGHT = 0.5
MAX_NEIGHBOURS = 100
TTL_MS = 30 * 86_400_000


def session_predecessors(
    state: ProfileState, record: dict[str, Any], items: list[str], window: int = WINDOW
) -> tuple[str, ...]:
    """The user's distinct items of this event's session before it, newest first.

    Called with the profile state *after* `apply_event` folded the event in: the
    session then includes it and `recent_items` (newest first, one entry per item)
    has its `items` at the event's time, which are skipped. An event older than the
    current session (a late one) pairs with nothing.
    """
    session = state.session
    ts: int = record["timestamp"]
    if session is None or ts < session.started_at:
        return ()
    current = set(items)
    found: list[str] = []
    for entry in state.recent_items:
        if entry.at > ts or entry.item_id in current:
            continue
        if entry.at < session.started_at or len(found) == window:
            break
        found.append(entry.item_id)
    return tuple(found)


def add_pairs(
    batch: DecayedBatch, items: list[str], predecessors: tuple[str, ...], weight: float, ts: int
) -> None:
    """Add the co-visitation pairs of one event on `items` at `ts` to `batch`."""
    add = batch.add
    for item in items:
        own = keys.covisitation_key(item)  # once per item, not once per pair
        for distance, previous in enumerate(predecessors, start=1):
            add(keys.covisitation_key(previous), item, weight / distance, ts)
            add(own, previous, BACKWARD_WEIGHT * weight / distance, ts)
        for other in items:
            if other != item:
                add(own, other, weight, ts)
