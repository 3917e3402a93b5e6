"""/openapi.json is valid OpenAPI 3.1 and matches what the server really does."""

from __future__ import annotations

import re
from typing import Any

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate
from starlette.applications import Starlette
from starlette.routing import Route

from backend.endpoints import dev
from backend.routing import ApiRoute


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def check(document: dict[str, Any], path: str, method: str, response: httpx.Response) -> None:
    """The response's status is documented and its body matches the documented schema."""
    responses = document["paths"][path][method]["responses"]
    documented = responses.get(str(response.status_code))
    assert documented is not None, f"{method} {path} answered undocumented {response.status_code}"
    if "content" not in documented:
        assert response.content == b""
        return
    ((media_type, entry),) = documented["content"].items()
    assert response.headers["content-type"] == media_type
    schema = {**entry["schema"], "$defs": document["components"]["schemas"]}
    jsonschema.validate(response.json(), _rewrite_refs(schema))


def _rewrite_refs(schema: Any) -> Any:
    # Component refs point into the OpenAPI document; make them local $defs for jsonschema.
    if isinstance(schema, dict):
        return {
            key: (value.replace("#/components/schemas/", "#/$defs/") if key == "$ref" else _rewrite_refs(value))
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_rewrite_refs(item) for item in schema]
    return schema


async def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)


async def test_every_route_and_method_is_documented_and_nothing_else(app: Starlette, document: dict[str, Any]) -> None:
    served: set[tuple[str, str]] = set()
    # The development demo page is a client of the API, not part of it (tests/test_dev_page.py).
    for route in (route for route in app.routes if route not in dev.routes):
        assert isinstance(route, ApiRoute), f"{getattr(route, 'path', route)} is not an ApiRoute, so it is undocumented"
        assert isinstance(route, Route)
        path = re.sub(r"{(\w+):\w+}", r"{\1}", route.path)
        served |= {(path, method.lower()) for method in route.operations}
    documented = {(path, method) for path, item in document["paths"].items() for method in item}

    assert served == documented


async def test_task_responses_match_their_schemas(
    client: httpx.AsyncClient, document: dict[str, Any], alice: dict[str, str], bob: dict[str, str]
) -> None:
    tasks = "/api/{user_id}/tasks"
    task = "/api/{user_id}/tasks/{task_id}"
    created = await client.post("/api/alice/tasks", json={"title": "t", "description": "d"}, headers=alice)
    check(document, tasks, "post", created)
    task_id = created.json()["id"]

    check(document, tasks, "get", await client.get("/api/alice/tasks", headers=alice))
    check(document, task, "get", await client.get(f"/api/alice/tasks/{task_id}", headers=alice))
    check(document, task, "put", await client.put(f"/api/alice/tasks/{task_id}", json={"title": "u"}, headers=alice))
    complete = "/api/{user_id}/tasks/{task_id}/complete"
    check(document, complete, "patch", await client.patch(f"/api/alice/tasks/{task_id}/complete", headers=alice))
    check(document, task, "delete", await client.delete(f"/api/alice/tasks/{task_id}", headers=alice))

    check(document, task, "get", await client.get(f"/api/alice/tasks/{task_id}", headers=alice))  # 404
    check(document, tasks, "get", await client.get("/api/alice/tasks", headers=bob))  # 403
    check(document, tasks, "get", await client.get("/api/alice/tasks"))  # 401
    check(document, tasks, "get", await client.get("/api/alice/tasks?limit=0", headers=alice))  # 422
    check(document, tasks, "post", await client.post("/api/alice/tasks", content=b"{", headers=alice))  # 415
    bad_json = await client.post(
        "/api/alice/tasks", content=b"{", headers={**alice, "Content-Type": "application/json"}
    )
    check(document, tasks, "post", bad_json)  # 400


async def test_probe_and_me_responses_match_their_schemas(
    client: httpx.AsyncClient, document: dict[str, Any], alice: dict[str, str]
) -> None:
    check(document, "/health", "get", await client.get("/health"))
    check(document, "/ready", "get", await client.get("/ready"))
    check(document, "/api/me", "get", await client.get("/api/me", headers=alice))
    check(document, "/api/me", "get", await client.get("/api/me"))


async def test_list_documents_total_count_header(document: dict[str, Any]) -> None:
    headers = document["paths"]["/api/{user_id}/tasks"]["get"]["responses"]["200"]["headers"]

    assert "X-Total-Count" in headers
