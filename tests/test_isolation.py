"""Per-user isolation: another user's path is 403, another user's task is 404,
and the owner's data is unchanged afterwards, checked in the database."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette


async def snapshot(app: Starlette) -> list[dict[str, Any]]:
    rows = await app.state.backend.db.fetch_all("SELECT * FROM tasks ORDER BY id")
    return [dict(row._mapping) for row in rows]


@pytest.fixture
async def alices_task(client: httpx.AsyncClient, alice: dict[str, str]) -> dict[str, Any]:
    response = await client.post(
        "/api/alice/tasks", json={"title": "Alice's secret", "description": "plans"}, headers=alice
    )
    assert response.status_code == 201
    task: dict[str, Any] = response.json()
    return task


def requests_for(user: str, task_id: int) -> list[tuple[str, str, dict[str, Any] | None]]:
    base = f"/api/{user}/tasks"
    return [
        ("GET", base, None),
        ("POST", base, {"title": "intruder"}),
        ("GET", f"{base}/{task_id}", None),
        ("PUT", f"{base}/{task_id}", {"title": "hacked", "completed": True}),
        ("PATCH", f"{base}/{task_id}/complete", None),
        ("PATCH", f"{base}/{task_id}/complete", {"completed": True}),
        ("DELETE", f"{base}/{task_id}", None),
    ]


async def test_other_users_path_is_403_on_every_route(
    client: httpx.AsyncClient, app: Starlette, bob: dict[str, str], alices_task: dict[str, Any]
) -> None:
    before = await snapshot(app)

    for method, url, body in requests_for("alice", alices_task["id"]):
        response = await client.request(method, url, json=body, headers=bob)
        assert response.status_code == 403, (method, url, response.text)
        assert response.json()["code"] == "USER_MISMATCH"

    assert await snapshot(app) == before


async def test_other_users_task_id_under_own_path_is_404(
    client: httpx.AsyncClient, app: Starlette, bob: dict[str, str], alices_task: dict[str, Any]
) -> None:
    before = await snapshot(app)

    for method, url, body in requests_for("bob", alices_task["id"]):
        if method in ("POST",) or url.endswith("/tasks"):
            continue  # bob's own collection: not about alice's task
        response = await client.request(method, url, json=body, headers=bob)
        assert response.status_code == 404, (method, url, response.text)
        assert response.json()["code"] == "TASK_NOT_FOUND"

    assert await snapshot(app) == before


async def test_missing_and_foreign_task_get_the_same_answer(
    client: httpx.AsyncClient, bob: dict[str, str], alices_task: dict[str, Any]
) -> None:
    foreign = await client.get(f"/api/bob/tasks/{alices_task['id']}", headers=bob)
    missing = await client.get("/api/bob/tasks/987654321", headers=bob)

    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["code"] == missing.json()["code"]
    assert foreign.json()["title"] == missing.json()["title"]


async def test_search_and_total_never_include_other_users_tasks(
    client: httpx.AsyncClient, bob: dict[str, str], alices_task: dict[str, Any]
) -> None:
    await client.post("/api/bob/tasks", json={"title": "Bob's own"}, headers=bob)

    for params in ({}, {"q": "secret"}, {"q": "plans"}, {"status": "pending"}, {"sort": "title"}):
        response = await client.get("/api/bob/tasks", params=params, headers=bob)
        assert response.status_code == 200
        assert all(task["user_id"] == "bob" for task in response.json())
        assert "Alice's secret" not in response.text
        assert response.headers["x-total-count"] == str(len(response.json()))


async def test_created_task_belongs_to_the_token_user(
    client: httpx.AsyncClient, app: Starlette, bob: dict[str, str]
) -> None:
    response = await client.post("/api/bob/tasks", json={"title": "mine"}, headers=bob)

    assert response.json()["user_id"] == "bob"
    rows = await snapshot(app)
    assert [row["user_id"] for row in rows] == ["bob"]


async def test_request_without_token_changes_nothing(
    client: httpx.AsyncClient, app: Starlette, alices_task: dict[str, Any]
) -> None:
    before = await snapshot(app)

    for method, url, body in requests_for("alice", alices_task["id"]):
        response = await client.request(method, url, json=body)
        assert response.status_code == 401, (method, url)

    assert await snapshot(app) == before
