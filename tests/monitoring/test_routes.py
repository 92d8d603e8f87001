"""Monitoring routes: bad input named, admin access, the dashboard's public assets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from relevo.api.app import create_app
from tests.api.conftest import fingerprint_of, make_settings

ADMIN = {"Authorization": "Bearer a-routes"}
WRITE = {"Authorization": "Bearer w-routes"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = make_settings(
        "embedded",
        tmp_path_factory.mktemp("data"),
        None,  # type: ignore[arg-type]
        write_key="w-routes",
        admin_key="a-routes",
        rate_limit=0,
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"source": "warehouse"}, "source"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-01-01T00:00:00"}, "since"),
        ({"sauce": "archive"}, "sauce"),
        ([1, 2], "body"),
    ],
)
def test_a_bad_baseline_request_names_its_field(
    client: TestClient, body: object, field: str
) -> None:
    response = client.post("/v1/monitoring/baseline", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


def test_nothing_to_capture_is_422_not_enough_data(client: TestClient) -> None:
    for source in ("archive", "live"):
        response = client.post("/v1/monitoring/baseline", json={"source": source}, headers=ADMIN)
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "not_enough_data"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/monitoring/drift"),
        ("GET", "/v1/monitoring/kpis"),
        ("GET", "/v1/monitoring/summary"),
        ("POST", "/v1/monitoring/evaluate"),
        ("POST", "/v1/monitoring/baseline"),
    ],
)
def test_monitoring_routes_are_admin_only(client: TestClient, method: str, path: str) -> None:
    assert client.request(method, path).status_code == 401
    assert client.request(method, path, headers=WRITE).status_code == 403


def test_before_any_reference_drift_says_so(client: TestClient) -> None:
    body = client.get("/v1/monitoring/drift", headers=ADMIN).json()
    assert (body["status"], body["reference"], body["window_size"]) == ("no_reference", None, 1000)
    assert client.get("/v1/monitoring/kpis", headers=ADMIN).json()["kpis"] == []


def test_the_dashboard_and_its_vendored_assets_are_public(client: TestClient) -> None:
    page = client.get("/dashboard")
    assert page.status_code == 200
    assert '<meta name="relevo-auth" content="required">' in page.text
    assert "cdn" not in page.text.lower()
    chart = client.get("/dashboard/static/chart.umd.min.js")
    assert chart.status_code == 200
    assert chart.text.startswith("/*!\n * Chart.js v4.6.1")
    assert client.get("/dashboard/static/dashboard.js").status_code == 200
    assert client.get("/dashboard/static/dashboard.css").status_code == 200
    missing = client.get("/dashboard/static/secrets.txt")
    assert missing.status_code == 404
    assert missing.json()["error"]["field"] == "name"


def test_the_vendored_chart_library_keeps_its_licence() -> None:
    vendor = Path(__file__).resolve().parents[2] / "src/relevo/monitoring/dashboard/vendor"
    assert "MIT License" in (vendor / "chart.js.LICENSE.md").read_text()
    assert "4.6.1" in (vendor / "VENDORED.md").read_text()


def test_a_quiet_system_writes_nothing_when_evaluated(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Evaluation rounds run every 30 s in every process: with nothing new they must
    leave the store as it was (state that changes on its own would defeat backups,
    replication checks and tests that compare the store before and after)."""
    settings = make_settings("embedded", tmp_path, request, demo_catalog=True)
    with TestClient(create_app(settings)) as client:
        engine = client.app.state.engine  # type: ignore[attr-defined]
        fingerprint = fingerprint_of(engine, settings, request)
        events = [{"type": "view", "user_id": f"q-{n}", "item_id": "sho-001"} for n in range(30)]
        assert client.post("/v1/events", json={"events": events}).status_code == 200
        assert client.post("/v1/monitoring/baseline", json={"source": "live"}).status_code == 200
        client.post(
            "/v1/events", json={"events": [{**e, "user_id": "r-" + e["user_id"]} for e in events]}
        )
        assert client.post("/v1/monitoring/evaluate").json()["evaluated"]
        before = fingerprint()
        for _ in range(2):
            assert client.post("/v1/monitoring/evaluate").json()["evaluated"]
        assert fingerprint() == before
