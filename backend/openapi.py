"""/openapi.json, generated from the routes and the msgspec schemas they name.

Nothing here describes the API by hand: paths, methods, bodies, query
parameters and statuses come from each `ApiRoute`'s `Operation`s, and the
JSON Schemas from the structs in backend/schemas.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from typing import Any, Final

import msgspec
from starlette.convertors import IntegerConvertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from backend import __version__
from backend.routing import ApiRoute, JSONResponse, Operation
from backend.schemas import Problem
from backend.state import app_state

_REF: Final = "#/components/schemas/{name}"


def build_openapi(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for every `ApiRoute` in `routes`."""
    api_routes = [route for route in routes if isinstance(route, ApiRoute)]
    types = _schema_types(api_routes)
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    refs = dict(zip(types, schemas, strict=True))
    paths = {
        route.path_format: {
            method.lower(): _operation(route, operation, refs) for method, operation in route.operations.items()
        }
        for route in api_routes
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Todo backend",
            "version": __version__,
            "description": "Tasks per user, authenticated with Better Auth JWTs. Errors are RFC 9457 problem+json.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


def _schema_types(routes: list[ApiRoute]) -> list[Any]:
    types: list[Any] = [Problem]
    for route in routes:
        for operation in route.operations.values():
            for candidate in (operation.response, operation.body, operation.failure_response):
                if candidate is not None and candidate not in types:
                    types.append(candidate)
    return types


def _operation(route: ApiRoute, operation: Operation, refs: dict[Any, Any]) -> dict[str, Any]:
    document: dict[str, Any] = {
        "summary": operation.summary,
        "operationId": operation.endpoint.__name__,
        "parameters": _path_parameters(route) + _query_parameters(operation),
        "responses": _responses(operation, refs),
    }
    if operation.authenticated:
        document["security"] = [{"bearerAuth": []}]
    if operation.body is not None:
        document["requestBody"] = {
            "required": operation.body_required,
            "content": {"application/json": {"schema": refs[operation.body]}},
        }
    return document


def _path_parameters(route: ApiRoute) -> list[dict[str, Any]]:
    # Starlette has parsed the path already: "{task_id:int}" is `task_id` with an IntegerConvertor.
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": (
                {"type": "integer", "minimum": 1}
                if isinstance(convertor, IntegerConvertor)
                else {"type": "string", "minLength": 1}
            ),
        }
        for name, convertor in route.param_convertors.items()
    ]


def _query_parameters(operation: Operation) -> list[dict[str, Any]]:
    if operation.query is None:
        return []
    _, definitions = msgspec.json.schema_components([operation.query])
    properties = definitions[operation.query.__name__]["properties"]
    return [{"name": name, "in": "query", "required": False, "schema": schema} for name, schema in properties.items()]


def _responses(operation: Operation, refs: dict[Any, Any]) -> dict[str, Any]:
    success: dict[str, Any] = {"description": HTTPStatus(operation.status).phrase}
    if operation.response is not None:
        success["content"] = {"application/json": {"schema": refs[operation.response]}}
    if operation.response_headers:
        success["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in operation.response_headers.items()
        }
    failure = operation.failure_response
    media_type, schema = (
        ("application/json", refs[failure]) if failure is not None else ("application/problem+json", refs[Problem])
    )
    responses: dict[str, Any] = {str(operation.status): success}
    for status in operation.errors:
        responses[str(status)] = {"description": HTTPStatus(status).phrase, "content": {media_type: {"schema": schema}}}
    return responses


async def openapi(request: Request) -> Response:
    state = app_state(request.app)
    if state.openapi is None:
        state.openapi = build_openapi(request.app.routes)
    document = state.openapi
    return JSONResponse(document)


routes = [ApiRoute("/openapi.json", Operation("GET", openapi, "This document", authenticated=False))]
