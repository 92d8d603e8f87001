"""The dashboard in headless Chromium after demo traffic, against a live `relevo serve`.

Acceptance (issue 6): `/dashboard` loads with no console errors, every chart has data
points, and a screenshot is saved under `test-artifacts/` (git-ignored). Chromium is
Debian's `/usr/bin/chromium`: nothing is downloaded. The same server runs with
``RELEVO_LOG_FORMAT=json``: its log must be JSON lines (uvicorn's included).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from relevo.demo.runner import Demo
from tests.support.polling import wait_until
from tests.support.servers import RelevoServer

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make test)"),
]
WRITE, ADMIN = "pk-dashboard", "sk-dashboard"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelevoServer]:
    directory = tmp_path_factory.mktemp("dashboard")
    env = {
        "RELEVO_DATA_DIR": str(directory / "data"),
        "RELEVO_WRITE_KEY": WRITE,
        "RELEVO_ADMIN_KEY": ADMIN,
        "RELEVO_DEMO_CATALOG": "true",
        "RELEVO_LOG_FORMAT": "json",
        "RELEVO_DRIFT_WINDOW": "50",
    }
    with RelevoServer(env, directory / "server.log") as running:
        demo = Demo(
            running.url,
            users=40,
            pages=2,
            seed=3,
            concurrency=4,
            admin_key=ADMIN,
            write_key=WRITE,
        )
        # in a thread of its own: Playwright's sync API may already run a loop in this one
        with ThreadPoolExecutor(1) as pool:
            pool.submit(lambda: asyncio.run(demo.run())).result()
            admin = {"Authorization": f"Bearer {ADMIN}"}
            baseline = httpx.post(
                running.url + "/v1/monitoring/baseline", json={"source": "live"}, headers=admin
            )
            assert baseline.status_code == 200, baseline.text
            demo.users = 30  # more traffic, compared with the baseline
            pool.submit(lambda: asyncio.run(demo.run())).result()
        assert httpx.post(running.url + "/v1/monitoring/evaluate", headers=admin).status_code == 200
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=FLAGS
        )
        yield launched
        launched.close()


def test_the_dashboard_draws_every_chart_without_console_errors(
    browser: Any, server: RelevoServer
) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(server.url + "/dashboard")
    # the page is public and holds nothing until it has the key
    page.wait_for_selector("#login", state="visible")
    assert page.is_hidden("#panels")
    page.fill("#key", ADMIN)
    page.click("button[type=submit]")
    page.wait_for_function("window.relevoDashboard && window.relevoDashboard.ready")
    charts = page.evaluate(
        """Object.entries(window.relevoDashboard.charts).map(([id, chart]) => ({
             id: id,
             points: chart.data.datasets.map(d => d.data.length),
             nonzero: chart.data.datasets.some(d => d.data.some(v =>
               Array.isArray(v) ? v[1] > 0 : v > 0)),
           }))"""
    )
    ids = {chart["id"] for chart in charts}
    assert {
        "chart-events",
        "chart-decisions",
        "chart-fallback",
        "chart-latency",
        "chart-rules",
    } <= ids
    assert any(chart_id.startswith("chart-experiment-") for chart_id in ids)
    for chart in charts:
        assert chart["points"], chart
        assert all(points > 0 for points in chart["points"]), chart
    nonzero = {chart["id"] for chart in charts if chart["nonzero"]}
    assert {"chart-events", "chart-decisions", "chart-latency", "chart-rules"} <= nonzero
    assert page.locator("#drift tbody tr").count() > 0
    assert page.locator("#drift td.status-ok").count() > 0  # windows were compared
    assert "reference baseline:" in page.inner_text("#drift-summary")
    assert page.evaluate("sessionStorage.getItem('relevo-admin-key')") == ADMIN
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert problems == []
    context.close()


def test_a_wrong_key_is_refused_and_asked_again(browser: Any, server: RelevoServer) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(server.url + "/dashboard")
    page.wait_for_selector("#login", state="visible")
    page.fill("#key", "not-the-key")
    page.click("button[type=submit]")
    page.wait_for_selector("#login-error", state="visible")
    assert "refused" in page.inner_text("#login-error")
    assert page.evaluate("sessionStorage.getItem('relevo-admin-key')") is None
    context.close()


def test_the_server_logs_json_lines(server: RelevoServer) -> None:
    lines = wait_until(lambda: server.log_path.read_text().splitlines())
    parsed = [json.loads(line) for line in lines if line.strip()]
    assert parsed
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in parsed)
    assert any(entry["logger"].startswith("uvicorn") for entry in parsed)
