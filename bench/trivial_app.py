"""The reference server: FastAPI with one trivial route, run the same way as relevo."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/ping")
async def ping() -> dict[str, bool]:
    return {"ok": True}


@app.post("/echo")
async def echo() -> dict[str, bool]:
    return {"ok": True}
