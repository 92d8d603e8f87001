"""The catalog: ``POST /v1/items`` (batch upsert), ``GET /v1/items[/{item_id}]``,
``DELETE /v1/items/{item_id}``.

Reading the catalog needs a write key (a page may show items); changing it is a
catalog-management action and needs an admin key.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from relevo import catalog
from relevo.api.deps import EngineDep, PathId
from relevo.api.responses import JSON, ErrorBody, read_json
from relevo.api.security import ADMIN, RESPONSES, WRITE
from relevo.errors import InvalidInput, NotFound
from relevo.events import Item

router = APIRouter(tags=["items"], dependencies=[WRITE], responses=RESPONSES)
admin_router = APIRouter(tags=["items"], dependencies=[ADMIN], responses=RESPONSES)


class UpsertBody(BaseModel):
    upserted: int


class RemovalBody(BaseModel):
    item_id: str
    removed: bool
    existed: bool


def _items_of(body: Any) -> list[Any]:
    if isinstance(body, dict) and "items" in body:
        extra = sorted(set(body) - {"items"})
        if extra:
            raise InvalidInput(
                f"the envelope holds only 'items'; unexpected: {', '.join(extra)}",
                field=extra[0],
                code="invalid_body",
            )
        if not isinstance(body["items"], list):
            raise InvalidInput(
                "'items' must be a list of items", field="items", code="invalid_body"
            )
        return body["items"]
    if isinstance(body, dict):
        return [body]
    raise InvalidInput('expected an item or {"items": [...]}', field="body", code="invalid_body")


@admin_router.post(
    "/v1/items",
    summary="Create or replace catalog items",
    description='One item or `{"items": [...]}` (up to 10,000). All-or-nothing: one '
    "invalid item → 422 naming it (`items[3].price`), and nothing is written. An item "
    "replaces the stored one with the same `item_id`.",
    response_model=UpsertBody,
    responses={413: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/Item"},
                            {"$ref": "#/components/schemas/ItemBatch"},
                        ]
                    }
                }
            },
        }
    },
)
async def upsert_items(request: Request, engine: EngineDep) -> JSON:
    body = await read_json(request, engine.settings.max_body_bytes)
    return JSON({"upserted": await engine.upsert_items(_items_of(body))})


@router.get("/v1/items", summary="List catalog items")
async def list_items(
    engine: EngineDep,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> JSON:
    items, total = await engine.items(limit=limit, offset=offset)
    return JSON({"items": items, "total": total, "offset": offset})


@router.get(
    "/v1/items/{item_id}",
    summary="One catalog item",
    response_model=Item,
    responses={404: {"model": ErrorBody}},
)
async def get_item(item_id: str, engine: EngineDep) -> JSON:
    item = await engine.item(item_id)
    if item is None:
        raise NotFound(f"no item {item_id!r}", field="item_id")
    return JSON(item)


class RemovalsBody(BaseModel):
    removed: int
    existed: list[str]


@admin_router.post(
    "/v1/items/remove",
    summary="Remove several catalog items",
    description='`{"item_ids": [...]}` (up to 10,000): `DELETE /v1/items/{item_id}` for each, '
    "in one request. All-or-nothing validation: one invalid id → 422 naming it "
    "(`item_ids[3]`), and nothing is removed. `existed`: the ids the catalog held.",
    response_model=RemovalsBody,
    responses={413: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ItemRemoval"}}
            },
        }
    },
)
async def remove_items(request: Request, engine: EngineDep) -> JSON:
    item_ids = catalog.validate_removal(await read_json(request, engine.settings.max_body_bytes))
    existed = await engine.remove_items(item_ids)
    return JSON({"removed": len(item_ids), "existed": existed})


@admin_router.delete(
    "/v1/items/{item_id}",
    summary="Remove a catalog item",
    description="The item leaves the catalog: its document, its place in the listing and "
    "its attribute postings go, and no answer shows it again (co-visitation and trending "
    "that still name it are skipped). "
    "Idempotent: removing an item the catalog does not hold is not an error (`existed` "
    "says whether it held it when asked). Logged and archived like an upsert; upserting "
    "the item again lists it anew.",
    response_model=RemovalBody,
    responses={422: {"model": ErrorBody}},
)
async def remove_item(item_id: PathId, engine: EngineDep) -> JSON:
    existed = await engine.remove_item(item_id)
    return JSON({"item_id": item_id, "removed": True, "existed": existed})
