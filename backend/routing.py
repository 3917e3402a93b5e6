"""Routes that carry their own API description.

An `Operation` is an endpoint plus what /openapi.json says about it: the body
and query schemas, the success status and the error statuses. `ApiRoute`
groups the operations of one path, so a wrong method gets a 405 whose `Allow`
header lists every method of the path. backend/openapi.py reads these objects;
nothing about the API is described twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Endpoint = Callable[[Request], Awaitable[Response]]

_ENCODER = msgspec.json.Encoder()


@dataclasses.dataclass(frozen=True)
class Operation:
    method: str
    endpoint: Endpoint
    summary: str
    status: int = 200
    response: Any = None  # the success body's type; None when there is none
    body: type[msgspec.Struct] | None = None
    body_required: bool = True
    query: type[msgspec.Struct] | None = None
    errors: tuple[int, ...] = ()
    failure_response: Any = None  # body type of the error statuses; None means Problem
    authenticated: bool = True
    response_headers: Mapping[str, str] = dataclasses.field(default_factory=dict)


class ApiRoute(Route):
    """One path, one or more documented operations."""

    def __init__(self, path: str, *operations: Operation, name: str | None = None) -> None:
        self.operations = {operation.method: operation for operation in operations}
        super().__init__(path, self._dispatch, methods=list(self.operations), name=name)

    async def _dispatch(self, request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await self.operations[method].endpoint(request)


class JSONResponse(Response):
    """JSON encoded once by msgspec (structs, datetimes as RFC 3339)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _ENCODER.encode(content)
