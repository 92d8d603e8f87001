"""Monitoring routes: bad input named, admin access, the dashboard's public assets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from relevo.api.app import create_app
from tests.api.conftest import make_settings

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
