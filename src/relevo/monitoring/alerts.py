"""Alerts as outbox actions, so the rules' webhooks deliver them like any rule action.

Each alert has a deterministic id naming its *episode* (the reference, feature and
window that started a drift; the placement, KPI and hour that started an anomaly).
The outbox keeps an id once, so an evaluation round that is repeated (a retry, a
crash before the state was saved, two processes racing) adds nothing.
"""

from __future__ import annotations

from typing import Any

from relevo.rules.engine import OutboxMessage

DRIFT_DETECTED = "drift_detected"
KPI_ANOMALY = "kpi_anomaly"
RULE_ID = "monitoring"
"""The `rule_id` of monitoring's actions (they come from no rule)."""


def drift_alert(
    reference: str, feature: str, window: int, details: dict[str, Any], at_ms: int
) -> OutboxMessage:
    payload = {"reference": reference, "feature": feature, "window": window, **details}
    return _alert(DRIFT_DETECTED, f"drift:{reference}:{feature}:{window}", payload, at_ms)


def kpi_alert(
    placement: str, kpi: str, hour_ms: int, details: dict[str, Any], at_ms: int
) -> OutboxMessage:
    payload = {"placement": placement, "kpi": kpi, **details}
    return _alert(KPI_ANOMALY, f"kpi:{placement}:{kpi}:{hour_ms}", payload, at_ms)


def _alert(name: str, episode: str, payload: dict[str, Any], at_ms: int) -> OutboxMessage:
    """One action per episode: the episode is its id, so raising it again adds nothing."""
    return OutboxMessage(
        message_id=episode,
        name=name,
        rule_id=RULE_ID,
        user_id=None,
        payload=payload,
        at_ms=at_ms,
        cause=episode,
    )
