"""Consent: what a user allowed relevo to do with their events.

Two purposes, each granted or refused by a ``consent`` event (``properties:
{"personalization": bool, "analytics": bool}``, sent by the JS SDK's ``consent()``, the
Python client or ``PUT /v1/users/{id}/consent``):

- **personalization** — keeping a per-user profile and using the user's events to train
  models. Refused (or, with ``RELEVO_CONSENT_REQUIRED=true``, never granted): the
  profile holds nothing but the consent itself; a refusal *clears* what the profile
  held; events go on being logged and archived (they are the record of what happened,
  and erasure or retention removes them) but feed no profile state and no training set;
  decisions must serve the non-personalized default (`Engine.personalization_allowed`).
  Site-wide aggregates (event counts by type and minute) still count the events: they
  identify no one.
- **analytics** — recorded and exposed for the experiment and KPI code, which must leave
  out users who refused it when attributing outcomes. Anonymous aggregates count them.

Consent takes effect in the order events are applied (arrival order), so the events
sent after a refusal are kept out even if their timestamps are older.

This module is pure policy (no store, no I/O) so that the feature code, the engine and
training-set generation share one definition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PURPOSES = ("personalization", "analytics")
CONSENT_EVENT = "consent"


def personalization_allowed(consent: Mapping[str, bool], required: bool) -> bool:
    """May relevo personalize for (and keep a profile of) a user with this consent?

    >>> personalization_allowed({}, required=False), personalization_allowed({}, required=True)
    (True, False)
    >>> personalization_allowed({"personalization": False}, required=False)
    False
    """
    granted = consent.get("personalization")
    return granted if granted is not None else not required


def analytics_allowed(consent: Mapping[str, bool], required: bool) -> bool:
    granted = consent.get("analytics")
    return granted if granted is not None else not required


def purposes_of(record: Mapping[str, Any]) -> dict[str, bool]:
    """The purposes a consent event sets (others are left as they were).

    >>> purposes_of({"type": "consent", "properties": {"analytics": False, "ads": True}})
    {'analytics': False}
    """
    properties = record.get("properties") or {}
    return {p: properties[p] for p in PURPOSES if isinstance(properties.get(p), bool)}


def consent_event(user_id: str, purposes: Mapping[str, bool]) -> dict[str, Any]:
    """The event that records a consent given through the API."""
    return {"type": CONSENT_EVENT, "user_id": user_id, "properties": dict(purposes)}
