"""Key names, in one place.

Every key of one user shares the hash tag ``{u:<user id>}`` so that Redis Cluster
places them on one slot, and a user's document and marks can be updated by one
atomic script. Global keys carry no user tag; the ones every event or decision writes
(trending overall, experiment, placement and rule counters) are split over several
keys, each its own slot (`trending_shard_keys`, `relevo.store.sharded`).
"""

from __future__ import annotations

import hashlib
import zlib
from functools import lru_cache


def user_tag(user_id: str) -> str:
    return "{u:" + user_id + "}"


def profile_key(user_id: str) -> str:
    return user_tag(user_id) + ":profile"


def profile_marks_key(user_id: str) -> str:
    return user_tag(user_id) + ":applied"


PROFILE_DOCUMENTS = user_tag("*") + ":profile"
"""A glob of every profile document's key (`Store.sweep_marks`)."""


def event_mark(event_id: str) -> bytes:
    """What a profile remembers of an applied event: 8 bytes instead of the whole id.

    Collisions matter only within one user's dedupe horizon (odds ~ n²/2⁶⁵). Not cached:
    every event id is new, so a cache of them only grows (65,536 ids held 12 MiB, a
    third of a soak's RSS growth); `Applier.read` computes each mark once per batch.
    """
    return hashlib.blake2b(event_id.encode(), digest_size=8).digest()


def item_key(item_id: str) -> str:
    return "item:" + item_id


ITEMS_INDEX = "items:index"
CATALOG_GENERATION = "items:generation"
"""Incremented by every applied catalog upsert: processes caching the catalog compare it."""
CATALOG_CHANGES = "items:changes"
"""The item ids of the latest catalog upserts, one entry per generation (a bounded list,
`relevo.catalog_cache.change_entry`): a process drops only those items' documents."""
TIMERS_DUE = "timers:due"
RECENT_EVENTS = "events:recent"
EVENT_TOTALS = "stats:events:total"


def event_rate_key(event_type: str) -> str:
    return "stats:events:rate:" + event_type


def assignments_key(user_id: str) -> str:
    """The user's sticky experiment arms (and per-experiment outcome markers)."""
    return user_tag(user_id) + ":assignments"


def exposures_key(user_id: str) -> str:
    """The user's exposure counts per placement, variant and cap window."""
    return user_tag(user_id) + ":exposures"


def decision_key(decision_id: str) -> str:
    return "decision:" + decision_id


def experiment_stats_key(experiment_id: str) -> str:
    return "experiment:" + experiment_id + ":stats"


def placement_stats_key(placement_id: str) -> str:
    return "placement:" + placement_id + ":stats"


RULE_ENGAGEMENT = "rules:engagement"


# -- live models: item-level aggregates, no user data. Each key carries its own hash tag
# (the decayed set and its landmark share it), so Redis Cluster spreads items over slots.
def covisitation_key(item_id: str) -> str:
    return "live:{i:" + item_id + "}:covisits"


def trending_key(category: str) -> str:
    """Trending items in one category."""
    return "live:{trending:" + category + "}"


TRENDING_SHARDS = 8
"""Trending overall is split by item over this many sets, each its own slot: every
event writes it, so one set would make one Redis Cluster master hot."""


def trending_shard_keys() -> list[str]:
    """The sets that together hold trending overall (each item lives in exactly one)."""
    return list(_TRENDING_SHARDS)


_TRENDING_SHARDS = tuple("live:{trending#" + str(shard) + "}" for shard in range(TRENDING_SHARDS))


@lru_cache(maxsize=65_536)  # every event's items: the catalog's hot items repeat
def trending_overall_key(item_id: str) -> str:
    """The shard of trending overall that holds `item_id` (crc32: stable everywhere)."""
    return _TRENDING_SHARDS[zlib.crc32(item_id.encode()) % TRENDING_SHARDS]


def attribute_key(token: str) -> str:
    """Items carrying one attribute token (`c:shoes`, `t:running`, `w:leather`)."""
    return "live:{attr:" + token + "}"


# -- kinds of keys, for `relevo store stats`. A kind is what a key holds, named from the
# layout above (the second key of a two-key primitive, ``<key>:at`` or ``<key>:seen``,
# counts with its first). Keep this next to the builders: a new builder needs a kind.
USER_KINDS: dict[str, str] = {
    ":profile": "profile",
    ":applied": "profile marks",
    ":assignments": "assignments",
    ":exposures": "exposures",
}
"""Per-user keys by suffix; every one of them must carry a TTL."""

PROFILE_DICTIONARIES = "profile-dictionary:"
"""Prefix of the profile dictionaries' keys (`relevo.features.dictionaries`): back them up
with the profiles, which cannot be read without them."""

_GLOBAL_KINDS: tuple[tuple[str, str], ...] = (
    (PROFILE_DICTIONARIES, "profile dictionaries"),
    ("item:", "items"),
    (ITEMS_INDEX, "items"),
    (CATALOG_GENERATION, "items"),
    (CATALOG_CHANGES, "items"),
    ("decision:", "decisions"),
    ("live:{i:", "live co-visitation"),
    ("live:{trending", "trending"),
    ("live:{attr:", "attributes"),
    (TIMERS_DUE, "timers"),
    ("timer:", "timers"),
    ("{outbox}:", "outbox"),
    ("{log:", "log streams"),
    ("stats:", "stats"),
    (RECENT_EVENTS, "stats"),
    ("experiment:", "stats"),
    ("placement:", "stats"),
    ("rules:", "stats"),
    ("config:", "configuration"),
    ("models:", "model registry"),
    ("workers:", "workers"),
    ("webhooks:", "webhooks"),
    ("ratelimit:", "rate limits"),
    ("{monitoring}:", "monitoring"),
    ("monitoring:", "monitoring"),
    ("marks:", "marks sweep"),
)


def key_kind(key: str) -> str:
    """The structure a key (without the backend's prefix) belongs to.

    >>> key_kind(profile_key("a}b")), key_kind(profile_marks_key("u1"))
    ('profile', 'profile marks')
    >>> key_kind(covisitation_key("i1") + ":at"), key_kind("{log:3}:events")
    ('live co-visitation', 'log streams')
    >>> key_kind("{monitoring}:observations"), key_kind("monitoring:drift:state")
    ('monitoring', 'monitoring')
    >>> key_kind("{u:u1}:later"), key_kind("something")
    ('user (other)', 'other')
    """
    if key.startswith("{u:"):
        for suffix, kind in USER_KINDS.items():
            if key.endswith(suffix):
                return kind
        return USER_OTHER
    for prefix, kind in _GLOBAL_KINDS:
        if key.startswith(prefix):
            return kind
    return "other"


USER_OTHER = "user (other)"


def is_user_kind(kind: str) -> bool:
    """Kinds that hold one user's data (which expires with the user's retention)."""
    return kind in USER_KINDS.values() or kind == USER_OTHER
