"""The task API: exact statuses, bodies, headers and database state."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from tests.support.protocol import PROBLEM

RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


async def create(
    client: httpx.AsyncClient, headers: dict[str, str], user: str = "alice", **body: Any
) -> dict[str, Any]:
    response = await client.post(f"/api/{user}/tasks", json=body, headers=headers)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


async def stored(app: Starlette, task_id: int) -> dict[str, Any] | None:
    row = await app.state.backend.db.fetch_one(
        "SELECT user_id, title, description, completed FROM tasks WHERE id = :id", {"id": task_id}
    )
    return None if row is None else {**dict(row._mapping), "completed": bool(row["completed"])}


async def test_create_task_returns_201_with_location_and_stores_it(
    client: httpx.AsyncClient, app: Starlette, alice: dict[str, str]
) -> None:
    response = await client.post(
        "/api/alice/tasks", json={"title": "  Buy milk  ", "description": "2 litres"}, headers=alice
    )

    assert response.status_code == 201
    task = response.json()
    assert response.headers["location"] == f"/api/alice/tasks/{task['id']}"
    assert task["title"] == "Buy milk"
    assert task["description"] == "2 litres"
    assert task["completed"] is False
    assert task["user_id"] == "alice"
    assert isinstance(task["id"], int)
    assert RFC3339_UTC.fullmatch(task["created_at"])
    assert task["created_at"] == task["updated_at"]
    assert set(task) == {"id", "user_id", "title", "description", "completed", "created_at", "updated_at"}
    assert await stored(app, task["id"]) == {
        "user_id": "alice",
        "title": "Buy milk",
        "description": "2 litres",
        "completed": False,
    }


async def test_create_task_with_completed_true_and_no_description(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    task = await create(client, alice, title="Done already", completed=True)

    assert task["completed"] is True
    assert task["description"] is None


async def test_get_task_returns_the_same_task(client: httpx.AsyncClient, alice: dict[str, str]) -> None:
    task = await create(client, alice, title="Read")

    response = await client.get(f"/api/alice/tasks/{task['id']}", headers=alice)

    assert response.status_code == 200
    assert response.json() == task


async def test_get_missing_task_returns_404_problem(client: httpx.AsyncClient, alice: dict[str, str]) -> None:
    response = await client.get("/api/alice/tasks/999999", headers=alice)

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["code"] == "TASK_NOT_FOUND"
    assert problem["status"] == 404
    assert problem["title"] == "Not Found"
    assert problem["type"].startswith("urn:")


@pytest.mark.parametrize("task_id", ["0", "9223372036854775808", "99999999999999999999999999"])
async def test_task_ids_outside_bigint_are_404_not_500(
    client: httpx.AsyncClient, alice: dict[str, str], task_id: str
) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = await client.request(method, f"/api/alice/tasks/{task_id}", headers=alice, json={"title": "x"})
        assert response.status_code == 404, (method, response.text)
    response = await client.patch(f"/api/alice/tasks/{task_id}/complete", headers=alice)
    assert response.status_code == 404


async def test_non_numeric_task_id_is_404(client: httpx.AsyncClient, alice: dict[str, str]) -> None:
    response = await client.get("/api/alice/tasks/abc", headers=alice)

    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


async def test_put_replaces_given_fields_and_keeps_others(
    client: httpx.AsyncClient, app: Starlette, alice: dict[str, str]
) -> None:
    task = await create(client, alice, title="Old", description="keep me", completed=True)

    response = await client.put(f"/api/alice/tasks/{task['id']}", json={"title": " New "}, headers=alice)

    assert response.status_code == 200
    updated = response.json()
    assert updated["title"] == "New"
    assert updated["description"] == "keep me"
    assert updated["completed"] is True
    assert updated["created_at"] == task["created_at"]
    assert datetime.fromisoformat(updated["updated_at"]) > datetime.fromisoformat(task["updated_at"])
    assert await stored(app, task["id"]) == {
        "user_id": "alice",
        "title": "New",
        "description": "keep me",
        "completed": True,
    }


async def test_put_can_clear_description_and_set_completed(client: httpx.AsyncClient, alice: dict[str, str]) -> None:
    task = await create(client, alice, title="T", description="d")

    response = await client.put(
        f"/api/alice/tasks/{task['id']}", json={"title": "T", "description": None, "completed": True}, headers=alice
    )

    assert response.status_code == 200
    assert response.json()["description"] is None
    assert response.json()["completed"] is True


async def test_put_without_title_is_422(client: httpx.AsyncClient, alice: dict[str, str]) -> None:
    task = await create(client, alice, title="T")

    response = await client.put(f"/api/alice/tasks/{task['id']}", json={"completed": True}, headers=alice)

    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "title", "location": "body", "message": "is required"}]


async def test_patch_complete_without_body_toggles(
    client: httpx.AsyncClient, app: Starlette, alice: dict[str, str]
) -> None:
    task = await create(client, alice, title="Toggle me")
    url = f"/api/alice/tasks/{task['id']}/complete"

    first = await client.patch(url, headers=alice)
    second = await client.patch(url, headers=alice)

    assert first.status_code == 200
    assert first.json()["completed"] is True
    assert second.json()["completed"] is False
    assert (await stored(app, task["id"]) or {})["completed"] is False


async def test_patch_complete_with_body_sets_idempotently(
    client: httpx.AsyncClient, app: Starlette, alice: dict[str, str]
) -> None:
    task = await create(client, alice, title="Set me")
    url = f"/api/alice/tasks/{task['id']}/complete"

    for _ in range(2):
        response = await client.patch(url, json={"completed": True}, headers=alice)
        assert response.status_code == 200
        assert response.json()["completed"] is True
    assert (await stored(app, task["id"]) or {})["completed"] is True

    response = await client.patch(url, json={"completed": False}, headers=alice)
    assert response.json()["completed"] is False


async def test_patch_complete_with_non_boolean_is_422(client: httpx.AsyncClient, alice: dict[str, str]) -> None:
    task = await create(client, alice, title="T")

    response = await client.patch(f"/api/alice/tasks/{task['id']}/complete", json={"completed": "yes"}, headers=alice)

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "completed", "location": "body", "message": "must be true or false, not a string"}
    ]


async def test_delete_returns_204_then_404(client: httpx.AsyncClient, app: Starlette, alice: dict[str, str]) -> None:
    task = await create(client, alice, title="Bye")

    response = await client.delete(f"/api/alice/tasks/{task['id']}", headers=alice)
    again = await client.delete(f"/api/alice/tasks/{task['id']}", headers=alice)

    assert response.status_code == 204
    assert response.content == b""
    assert again.status_code == 404
    assert await stored(app, task["id"]) is None


async def test_wrong_method_is_405_problem_with_allow(client: httpx.AsyncClient, alice: dict[str, str]) -> None:
    response = await client.post("/api/alice/tasks/1", headers=alice)

    assert response.status_code == 405
    assert response.json()["code"] == "METHOD_NOT_ALLOWED"
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "PUT", "DELETE"}


async def test_unknown_path_is_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM


class TestList:
    @pytest.fixture
    async def seeded(self, client: httpx.AsyncClient, alice: dict[str, str]) -> list[dict[str, Any]]:
        titles = [("banana", "yellow fruit", False), ("Apple", None, True), ("cherry", "red 100% fruit", False)]
        return [await create(client, alice, title=t, description=d, completed=c) for t, d, c in titles]

    async def list(self, client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> tuple[list[str], int]:
        response = await client.get("/api/alice/tasks", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [task["title"] for task in response.json()], int(response.headers["x-total-count"])

    async def test_default_is_newest_first_with_total(
        self, client: httpx.AsyncClient, alice: dict[str, str], seeded: Any
    ) -> None:
        assert await self.list(client, alice) == (["cherry", "Apple", "banana"], 3)

    async def test_empty_list(self, client: httpx.AsyncClient, alice: dict[str, str]) -> None:
        response = await client.get("/api/alice/tasks", headers=alice)

        assert response.json() == []
        assert response.headers["x-total-count"] == "0"

    async def test_status_filters(self, client: httpx.AsyncClient, alice: dict[str, str], seeded: Any) -> None:
        assert await self.list(client, alice, status="completed") == (["Apple"], 1)
        assert await self.list(client, alice, status="pending") == (["cherry", "banana"], 2)
        assert await self.list(client, alice, status="all") == (["cherry", "Apple", "banana"], 3)

    async def test_search_matches_title_and_description_case_insensitively(
        self, client: httpx.AsyncClient, alice: dict[str, str], seeded: Any
    ) -> None:
        assert await self.list(client, alice, q="APPLE") == (["Apple"], 1)
        assert await self.list(client, alice, q="fruit") == (["cherry", "banana"], 2)
        assert await self.list(client, alice, q="100%") == (["cherry"], 1)
        assert await self.list(client, alice, q="_") == ([], 0)

    async def test_sort_by_title_both_ways(self, client: httpx.AsyncClient, alice: dict[str, str], seeded: Any) -> None:
        assert await self.list(client, alice, sort="title") == (["Apple", "banana", "cherry"], 3)
        assert await self.list(client, alice, sort="-title") == (["cherry", "banana", "Apple"], 3)
        assert await self.list(client, alice, sort="created_at") == (["banana", "Apple", "cherry"], 3)

    async def test_sort_by_updated_at(self, client: httpx.AsyncClient, alice: dict[str, str], seeded: Any) -> None:
        await client.patch(f"/api/alice/tasks/{seeded[0]['id']}/complete", headers=alice)

        assert (await self.list(client, alice, sort="-updated_at"))[0][0] == "banana"

    async def test_pagination_keeps_total(self, client: httpx.AsyncClient, alice: dict[str, str], seeded: Any) -> None:
        assert await self.list(client, alice, sort="title", limit=2) == (["Apple", "banana"], 3)
        assert await self.list(client, alice, sort="title", limit=2, offset=2) == (["cherry"], 3)
        assert await self.list(client, alice, sort="title", limit=2, offset=10) == ([], 3)

    @pytest.mark.parametrize(
        ("params", "field", "message"),
        [
            ({"limit": "0"}, "limit", "must be from 1 to 200"),
            ({"limit": "201"}, "limit", "must be from 1 to 200"),
            ({"limit": "ten"}, "limit", "must be a whole number, not a string"),
            ({"offset": "-1"}, "offset", "must be from 0 to 1000000000"),
            ({"status": "done"}, "status", "must be one of all, completed, pending"),
            ({"sort": "id"}, "sort", "must be one of -created_at, -title, -updated_at, created_at, title, updated_at"),
            ({"q": "x" * 201}, "q", "must be at most 200 characters (got 201)"),
            ({"q": "a\x00b"}, "q", "must be text without NUL characters or lone surrogates"),
        ],
    )
    async def test_bad_query_is_422_naming_the_parameter_and_its_limit(
        self, client: httpx.AsyncClient, alice: dict[str, str], params: dict[str, str], field: str, message: str
    ) -> None:
        response = await client.get("/api/alice/tasks", params=params, headers=alice)

        assert response.status_code == 422
        problem = response.json()
        assert problem["code"] == "VALIDATION_FAILED"
        assert problem["errors"] == [{"field": field, "location": "query", "message": message}]

    async def test_repeated_parameter_is_422(self, client: httpx.AsyncClient, alice: dict[str, str]) -> None:
        response = await client.get("/api/alice/tasks?limit=1&limit=2", headers=alice)

        assert response.status_code == 422

    async def test_unknown_parameters_are_ignored(
        self, client: httpx.AsyncClient, alice: dict[str, str], seeded: Any
    ) -> None:
        assert await self.list(client, alice, _cachebuster="123") == (["cherry", "Apple", "banana"], 3)
