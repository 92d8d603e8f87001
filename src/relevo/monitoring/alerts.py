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
    episode = f"drift:{reference}:{feature}:{window}"
    return OutboxMessage(
        message_id=episode,
        name=DRIFT_DETECTED,
        rule_id=RULE_ID,
        user_id=None,
        payload={"reference": reference, "feature": feature, "window": window, **details},
        at_ms=at_ms,
        cause=episode,
    )


def kpi_alert(
    placement: str, kpi: str, hour_ms: int, details: dict[str, Any], at_ms: int
) -> OutboxMessage:
    episode = f"kpi:{placement}:{kpi}:{hour_ms}"
    return OutboxMessage(
        message_id=episode,
        name=KPI_ANOMALY,
        rule_id=RULE_ID,
        user_id=None,
        payload={"placement": placement, "kpi": kpi, **details},
        at_ms=at_ms,
        cause=episode,
    )
