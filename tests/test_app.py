"""Routing of the whole application: no redirect is built from what a client says (issue 14, item 6).

Starlette answers `/api/alice/tasks/` with a 307 to the path without the
slash, built from the `Host` header (`http://evil.example/api/alice/tasks`).
Here a trailing slash is a 404 problem whose detail names the right path.
"""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from tests.support.protocol import PROBLEM

EVIL = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/alice/tasks/"),
        ("POST", "/api/alice/tasks/"),
        ("GET", "/api/alice/tasks/{id}/"),
        ("PUT", "/api/alice/tasks/{id}/"),
        ("DELETE", "/api/alice/tasks/{id}/"),
        ("PATCH", "/api/alice/tasks/{id}/complete/"),
        ("GET", "/api/me/"),
        ("GET", "/health/"),
        ("GET", "/ready/"),
        ("GET", "/openapi.json/"),
    ],
)
async def test_trailing_slash_is_a_404_naming_the_path_not_a_redirect_to_the_host(
    client: httpx.AsyncClient, app: Starlette, alice: dict[str, str], method: str, path: str
) -> None:
    created = await client.post("/api/alice/tasks", json={"title": "kept"}, headers=alice)
    task = created.json()["id"]
    path = path.format(id=task)
    body = b'{"title": "changed", "completed": true}' if method in ("POST", "PUT", "PATCH") else None
    headers = {**alice, **EVIL, "Content-Type": "application/json"}

    response = await client.request(method, path, content=body, headers=headers)

    assert response.status_code == 404, response.headers
    assert "location" not in response.headers
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["code"] == "NOT_FOUND"
    assert problem["detail"] == (f"No route matches {path!r}; without the trailing slash it is {path.rstrip('/')!r}")
    assert "evil.example" not in response.text
    rows = await app.state.backend.db.fetch_all("SELECT title, completed FROM tasks")
    assert [(row["title"], bool(row["completed"])) for row in rows] == [("kept", False)]


async def test_unknown_path_with_a_trailing_slash_is_a_plain_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/nothing/here/", headers=EVIL)

    assert response.status_code == 404
    assert "location" not in response.headers
    assert response.json()["detail"] == "No route matches '/api/nothing/here/'; see /openapi.json"


async def test_slashes_only_and_double_slashes_are_404_not_redirects(client: httpx.AsyncClient) -> None:
    for path in ("//", "/api/alice/tasks//", "//evil.example/api/alice/tasks/"):
        response = await client.get(path, headers=EVIL)

        assert response.status_code == 404, path
        assert "location" not in response.headers, path
