"""Monitoring routes: `/metrics`, the monitoring API (admin) and the dashboard (public page).

- ``GET /metrics``: Prometheus text. It declares PUBLIC access and checks the admin
  key itself unless ``RELEVO_METRICS_PUBLIC=true``: scrapers inside a private network
  often cannot send a key, and that choice belongs to the operator.
- ``GET /v1/monitoring/{drift,kpis,summary}``, ``POST /v1/monitoring/{baseline,evaluate}``:
  admin.
- ``GET /dashboard`` and its assets: public, holding no data. The page asks for the
  admin key, keeps it in `sessionStorage` and sends it as a Bearer token to the
  summary route, so the data stays behind the key.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from fastapi import APIRouter, Body, Request
from starlette.responses import Response

from relevo.api.deps import EngineDep
from relevo.api.responses import JSON
from relevo.api.security import ADMIN, PUBLIC, RESPONSES, Credentials, admin_access
from relevo.errors import NotFound
from relevo.monitoring import baseline, metrics
from relevo.monitoring.summary import summary as dashboard_summary

router = APIRouter(tags=["monitoring"], dependencies=[ADMIN], responses=RESPONSES)
public_router = APIRouter(tags=["monitoring"], dependencies=[PUBLIC])

ASSETS = {
    "dashboard.js": "application/javascript",
    "dashboard.css": "text/css",
    "chart.umd.min.js": "application/javascript",
}


@router.get(
    "/v1/monitoring/drift",
    summary="Drift of model inputs and scores, per feature",
    description="Each monitored feature's last window compared with the reference (the "
    "served model's training data, else the baseline): the test (KS for numbers, "
    "chi-square for categories), its statistic and p-value, PSI and a status (`ok`, "
    "`warn`: PSI >= 0.1 or p < 0.01, `drift`: PSI >= 0.25 and p < 0.001).",
)
async def drift(engine: EngineDep) -> JSON:
    return JSON(await engine.monitoring.drift_report())


@router.get(
    "/v1/monitoring/kpis",
    summary="CTR and conversion per placement against their baseline",
    description="The last complete hour of each placement on a Laney p' control chart "
    "(baseline: the same hour of the previous 7 days, else the previous 24 hours); "
    "`anomaly` for a drop beyond 3 sigma, `warn` beyond 2.",
)
async def kpis(engine: EngineDep) -> JSON:
    return JSON(await engine.monitoring.kpi_report())


@router.post(
    "/v1/monitoring/baseline",
    summary="Capture the drift baseline",
    description="Captures reference distributions of every monitored feature, used while "
    "the served model has none: from the archive (`source: archive`, optionally "
    '`since`) or from the values observed recently (`source: live`). Body: `{"source": '
    '"archive", "since": "2026-01-01T00:00:00Z"}` (both optional).',
)
async def capture_baseline(
    engine: EngineDep,
    body: Any = Body(None, examples=[{"source": "archive"}]),  # noqa: B008
) -> JSON:
    source, since_ms = baseline.parse_request(body)
    return JSON(await baseline.capture(engine, source, since_ms))


@router.post(
    "/v1/monitoring/evaluate",
    summary="Evaluate drift and KPIs now",
    description="Runs one monitoring round now (it also runs every "
    "`RELEVO_MONITORING_EVERY`); new drift or KPI episodes become outbox actions "
    "`drift_detected` / `kpi_anomaly`.",
)
async def evaluate(engine: EngineDep) -> JSON:
    return JSON(await engine.monitoring.evaluate())


@router.get("/v1/monitoring/summary", summary="Everything the dashboard shows")
async def summary(engine: EngineDep) -> JSON:
    return JSON(await dashboard_summary(engine))


@public_router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, **RESPONSES},
)
async def prometheus(request: Request, engine: EngineDep, credentials: Credentials) -> Response:
    if not engine.settings.metrics_public:
        await admin_access(request, credentials)
    state = await engine.monitoring.shared_state()
    return Response(metrics.exposition(state), media_type=metrics.CONTENT_TYPE)


@public_router.get(
    "/dashboard",
    summary="The monitoring dashboard (asks for the admin key)",
    response_class=Response,
    responses={200: {"content": {"text/html": {}}}},
)
async def dashboard(request: Request) -> Response:
    auth = b"required" if request.app.state.keys.enabled else b"none"
    page = _asset("index.html").replace(b"{{auth}}", auth)
    return Response(page, media_type="text/html; charset=utf-8")


@public_router.get(
    "/dashboard/static/{name}",
    summary="The dashboard's scripts and styles (vendored: no CDN)",
    response_class=Response,
)
async def dashboard_asset(name: str) -> Response:
    if name not in ASSETS:
        raise NotFound(f"no dashboard asset {name!r}", field="name")
    return Response(
        _asset(name),
        media_type=ASSETS[name],
        headers={"Cache-Control": "public, max-age=300"},
    )


@cache
def _asset(name: str) -> bytes:
    folder = resources.files("relevo.monitoring").joinpath("dashboard")
    path = folder.joinpath("vendor", name) if name == "chart.umd.min.js" else folder.joinpath(name)
    return path.read_bytes()
