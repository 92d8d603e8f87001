"""Builders of a realistic profile and event, in the shapes the core serves to rules."""

from __future__ import annotations

from typing import Any

T0 = "2026-11-26T10:00:00.000Z"
T0_MS = 1_795_687_200_000


def make_profile(electronics_5m: int = 4, **overrides: Any) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "user_id": "u1",
        "counts": {"view": {"5m": 3, "1h": 5, "24h": 9, "30d": 20, "total": 31}},
        "category_counts": {
            "view": {
                "electronics": {
                    "5m": electronics_5m,
                    "1h": electronics_5m,
                    "24h": electronics_5m,
                    "30d": electronics_5m,
                    "total": electronics_5m,
                },
                "books": {"5m": 1, "1h": 1, "24h": 1, "30d": 1, "total": 1},
            }
        },
        "first_seen": {"view": "2026-11-26T09:00:00.000Z"},
        "last_seen": {"view": T0},
        "rfm": {"recency_days": 2.5, "frequency": 1, "monetary": 59.9},
        "session": {"id": "s1", "started_at": T0, "events": 4, "count": 2},
        "affinities": {"electronics": 3.2},
        "recent_items": ["sku1", "sku2"],
        "cart": [{"item_id": "sku1", "quantity": 2}],
        "segments": ["vip"],
        "consent": {"personalization": True},
        "attributes": {},
    }
    profile.update(overrides)
    return profile


def make_event(
    type_: str = "view", event_id: str = "e1", timestamp: str | int = T0, **extra: Any
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": event_id,
        "type": type_,
        "user_id": "u1",
        "session_id": "s1",
        "timestamp": timestamp,
        "context": {"device": "mobile", "country": "FR"},
    }
    event.update(extra)
    return event
