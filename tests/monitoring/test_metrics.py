"""`/metrics`: parses as Prometheus text, moves by the expected amounts, needs its key.

Counters are process-wide (one registry per process), so every check compares the
values before and after a known batch of events and decisions.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from relevo.api.app import create_app
from tests.api.conftest import make_settings
from tests.conftest import BACKENDS

ADMIN = {"Authorization": "Bearer a-metrics"}
WRITE = {"Authorization": "Bearer w-metrics"}
PLACEMENTS = {"placements": [{"id": "metrics_recs", "k": 3, "default_items": ["boo-001"]}]}
RULES = {"rules": [{"id": "every-view", "trigger": {"on": "view"}, "then": [{"add_segment": "v"}]}]}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module", params=BACKENDS)
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    settings = make_settings(
        request.param,
        tmp_path_factory.mktemp("data"),
        request,
        write_key="w-metrics",
        admin_key="a-metrics",
        demo_catalog=True,
        rate_limit=0,
    )
    with TestClient(create_app(settings)) as client:
        assert client.put("/v1/placements", json=PLACEMENTS, headers=ADMIN).status_code == 200
        assert client.put("/v1/rules", json=RULES, headers=ADMIN).status_code == 200
        yield client


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(
        value for (found, pairs), value in samples.items() if found == name and wanted <= set(pairs)
    )


def test_counters_move_by_what_was_sent(client: TestClient) -> None:
    before = scrape(client)
    events = [
        *(
            {"type": "view", "user_id": f"m-{n}", "item_id": "sho-001", "event_id": f"mv-{n}"}
            for n in range(5)
        ),
        {
            "type": "purchase",
            "user_id": "m-0",
            "item_id": "sho-001",
            "value": 10,
            "event_id": "mp-1",
        },
        {"type": "view", "user_id": "m-0", "item_id": "sho-001", "event_id": "mv-0"},  # duplicate
        {"type": "view"},  # rejected: no user
    ]
    report = client.post("/v1/events", json={"events": events}, headers=WRITE).json()
    assert (report["accepted"], report["duplicate"], report["rejected"]) == (6, 1, 1)
    for n in range(4):
        decided = client.post(
            "/v1/decide", json={"user_id": f"m-{n}", "placement": "metrics_recs"}, headers=WRITE
        )
        assert decided.status_code == 200
    assert client.get("/v1/users/m-0", headers=ADMIN).status_code == 200
    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("relevo_events_total", type="view", status="accepted") == 5
    assert moved("relevo_events_total", type="purchase", status="accepted") == 1
    assert moved("relevo_events_total", type="view", status="duplicate") == 1
    assert moved("relevo_events_total", status="rejected") == 1
    assert moved("relevo_event_lag_seconds_count") == 6
    assert moved("relevo_decisions_total", placement="metrics_recs") == 4
    assert moved("relevo_decision_duration_seconds_count", placement="metrics_recs") == 4
    # requests by route template (one series for every user), the scrape itself included
    assert moved("relevo_http_requests_total", route="/v1/events", status="200") == 1
    assert moved("relevo_http_requests_total", route="/v1/decide") == 4
    assert moved("relevo_http_requests_total", route="/v1/users/{user_id}") == 1
    assert not any("m-0" in dict(labels).get("route", "") for _, labels in after)
    assert moved("relevo_http_request_duration_seconds_count", route="/v1/decide") == 4
    assert moved("relevo_store_operation_duration_seconds_count", operation="docs_write") >= 1
    # read from the store at scrape time: rule statistics, timers
    assert total(after, "relevo_rule_evaluations", rule="every-view", outcome="fires") >= 5
    assert ("relevo_timers_pending", ()) in after


def test_a_serving_process_exports_its_loop_lag(client: TestClient) -> None:
    before = total(scrape(client), "relevo_event_loop_lag_seconds_count")
    deadline = time.monotonic() + 10.0
    while total(scrape(client), "relevo_event_loop_lag_seconds_count") <= before:
        assert time.monotonic() < deadline, "the loop lag is not sampled"
        time.sleep(0.01)  # (the server's loop runs in its own thread meanwhile)


def test_responses_carry_a_request_id(client: TestClient) -> None:
    given = client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = client.get("/healthz", headers={"X-Request-Id": "not valid!"})
    assert made.headers["x-request-id"] != "not valid!"
    assert len(made.headers["x-request-id"]) == 16


def test_metrics_need_the_admin_key(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=WRITE).status_code == 403


def test_metrics_may_be_public(tmp_path: Path) -> None:
    settings = make_settings(
        "embedded",
        tmp_path,
        None,
        admin_key="a",
        write_key="w",
        metrics_public=True,  # type: ignore[arg-type]
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/metrics").status_code == 200
        assert client.get("/v1/monitoring/drift").status_code == 401
