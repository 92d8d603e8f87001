"""``GET /sdk/relevo.js``: the browser SDK, served by relevo itself (public).

The file ships inside the package (`relevo/sdk/relevo.js`, so wheels carry it);
`sdk/js/relevo.js` at the repository root is a link to it.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from starlette.responses import Response

from relevo.api.security import PUBLIC
from relevo.errors import NotFound

router = APIRouter(tags=["sdk"], dependencies=[PUBLIC])


@cache
def sdk_source() -> bytes | None:
    packaged = resources.files("relevo").joinpath("sdk/relevo.js")
    return packaged.read_bytes() if packaged.is_file() else None


@router.get(
    "/sdk/relevo.js",
    summary="The browser SDK",
    response_class=Response,
    responses={200: {"content": {"application/javascript": {}}}},
)
async def sdk() -> Response:
    source = sdk_source()
    if source is None:
        raise NotFound("the SDK file is not part of this installation")
    return Response(
        source,
        media_type="application/javascript",
        headers={"Cache-Control": "public, max-age=300"},
    )
