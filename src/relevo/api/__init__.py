"""The HTTP API (FastAPI). `relevo.api.app.create_app(settings)` builds it."""
