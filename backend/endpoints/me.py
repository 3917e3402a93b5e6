"""GET /api/me: who the token says you are; the quickest check that auth works."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from backend.auth import authenticate
from backend.routing import ApiRoute, JSONResponse, Operation
from backend.schemas import Me


async def me(request: Request) -> Response:
    principal = await authenticate(request)
    return JSONResponse(Me(principal.user_id, principal.email, principal.name))


routes = [ApiRoute("/api/me", Operation("GET", me, "The caller, from the token", response=Me, errors=(401, 503)))]
