"""The isolation matrix: every route and method of the app, one intruder at a time.

The cases are generated from the application's own routes, so a route added
later is covered without touching this file (or fails here, naming what to
add). For each operation with a `{user_id}` in its path, intruders with valid
tokens of their own get 403 on the owner's path and 404 for the owner's task
ids under their own path, and the owner's rows are unchanged afterwards, read
back from the database. Intruders include look-alike users: another case, a
trailing space, and SQL LIKE wildcards, which must never match the owner.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from starlette.applications import Starlette

from backend.app import create_app
from backend.routing import ApiRoute, Operation
from backend.schemas import CompletionSet, TaskCreate, TaskUpdate
from backend.settings import Settings
from tests.support.tokens import Tokens

OWNER = "alice"
# Another user, and look-alikes: case, a trailing space, LIKE wildcards, a Cyrillic a (U+0430).
INTRUDERS = ["bob", "ALICE", "alice ", "al%", "_lice", "%", "\u0430lice"]
FEW_INTRUDERS = ["bob", "ALICE", "al%", "\u0430lice"]
EXAMPLE_BODIES: dict[Any, dict[str, Any]] = {
    TaskCreate: {"title": "intruder", "description": "x"},
    TaskUpdate: {"title": "hacked", "description": "owned", "completed": True},
    CompletionSet: {"completed": True},
}
_PARAMETER = re.compile(r"{(\w+)(?::\w+)?}")


def _operations() -> list[tuple[str, str, Operation]]:
    # Built only to read its routes: nothing connects before the lifespan starts.
    app = create_app(Settings(database_url="sqlite:///never-opened.sqlite3"))
    return [
        (route.path, method, operation)
        for route in app.routes
        if isinstance(route, ApiRoute)
        for method, operation in route.operations.items()
    ]


OPERATIONS = _operations()
USER_OPERATIONS = [(path, method, op) for path, method, op in OPERATIONS if "{user_id}" in path]
TASK_OPERATIONS = [(path, method, op) for path, method, op in USER_OPERATIONS if "{task_id" in path]
OTHER_GETS = [path for path, method, _ in OPERATIONS if "{" not in path and method == "GET"]


def _ids(operations: list[tuple[str, str, Operation]]) -> list[str]:
    return [f"{method} {path}" for path, method, _ in operations]


def url(path: str, user: str, task_id: int) -> str:
    values = {"user_id": quote(user, safe=""), "task_id": str(task_id)}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in values, f"add a value for the path parameter {{{name}}} to tests/test_isolation_matrix.py"
        return values[name]

    return _PARAMETER.sub(fill, path)


def bodies(operation: Operation) -> list[dict[str, Any] | None]:
    """The bodies to try: a valid example, and none at all when the body is optional."""
    if operation.body is None:
        return [None]
    assert operation.body in EXAMPLE_BODIES, f"add an example {operation.body.__name__} to EXAMPLE_BODIES"
    example = EXAMPLE_BODIES[operation.body]
    return [example] if operation.body_required else [example, None]


async def rows(app: Starlette) -> list[dict[str, Any]]:
    result = await app.state.backend.db.fetch_all("SELECT * FROM tasks ORDER BY id")
    return [dict(row._mapping) for row in result]


@pytest.fixture
async def owners_tasks(client: httpx.AsyncClient, tokens: Tokens) -> list[dict[str, Any]]:
    created = []
    for title, description in [("Alice's secret plan", "launch codes"), ("Alice's groceries", None)]:
        body = {"title": title, "description": description}
        response = await client.post(f"/api/{OWNER}/tasks", json=body, headers=tokens.headers(OWNER))
        assert response.status_code == 201, response.text
        created.append(response.json())
    return created


def test_the_matrix_covers_the_task_api() -> None:
    # A guard against an empty parametrization: these must be among what the app serves.
    assert {("GET", "/api/{user_id}/tasks"), ("POST", "/api/{user_id}/tasks")} <= {
        (method, path) for path, method, _ in USER_OPERATIONS
    }
    assert {method for _, method, _ in TASK_OPERATIONS} == {"GET", "PUT", "PATCH", "DELETE"}


@pytest.mark.parametrize("intruder", FEW_INTRUDERS)
@pytest.mark.parametrize(("path", "method", "operation"), USER_OPERATIONS, ids=_ids(USER_OPERATIONS))
async def test_intruder_on_the_owners_path_is_403_and_changes_nothing(
    client: httpx.AsyncClient,
    app: Starlette,
    tokens: Tokens,
    owners_tasks: list[dict[str, Any]],
    path: str,
    method: str,
    operation: Operation,
    intruder: str,
) -> None:
    before = await rows(app)

    for body in bodies(operation):
        target = url(path, OWNER, owners_tasks[0]["id"])
        response = await client.request(method, target, json=body, headers=tokens.headers(intruder))

        assert response.status_code == 403, (method, target, response.text)
        assert response.json()["code"] == "USER_MISMATCH"
        assert "Alice's" not in response.text

    assert await rows(app) == before


@pytest.mark.parametrize("intruder", FEW_INTRUDERS)
@pytest.mark.parametrize(("path", "method", "operation"), TASK_OPERATIONS, ids=_ids(TASK_OPERATIONS))
async def test_owners_task_id_under_the_intruders_path_is_404_like_a_missing_one(
    client: httpx.AsyncClient,
    app: Starlette,
    tokens: Tokens,
    owners_tasks: list[dict[str, Any]],
    path: str,
    method: str,
    operation: Operation,
    intruder: str,
) -> None:
    before = await rows(app)
    headers = tokens.headers(intruder)

    for body in bodies(operation):
        for task in owners_tasks:
            foreign = await client.request(method, url(path, intruder, task["id"]), json=body, headers=headers)
            missing = await client.request(method, url(path, intruder, 987_654_321), json=body, headers=headers)

            assert foreign.status_code == missing.status_code == 404, (method, path, foreign.text)
            assert foreign.json()["code"] == missing.json()["code"] == "TASK_NOT_FOUND"
            assert foreign.json()["detail"] == missing.json()["detail"].replace("987654321", str(task["id"]))
            assert "Alice's" not in foreign.text

    assert await rows(app) == before


@pytest.mark.parametrize("intruder", INTRUDERS)
async def test_intruders_list_search_and_total_never_show_the_owners_tasks(
    client: httpx.AsyncClient, app: Starlette, tokens: Tokens, owners_tasks: list[dict[str, Any]], intruder: str
) -> None:
    headers = tokens.headers(intruder)
    own = await client.post(f"/api/{quote(intruder, safe='')}/tasks", json={"title": "mine"}, headers=headers)
    assert own.status_code == 201, own.text
    searches: list[dict[str, str]] = [
        {},
        {"q": "secret"},
        {"q": "launch codes"},
        {"q": "Alice"},
        {"q": "%"},
        {"q": "_"},
        {"q": "' OR '1'='1"},
        {"q": "\\"},
        {"status": "pending"},
        {"status": "completed"},
        {"sort": "title"},
        {"sort": "-updated_at", "limit": "1", "offset": "1"},
        {"offset": "1000000"},
    ]

    for params in searches:
        response = await client.get(f"/api/{quote(intruder, safe='')}/tasks", params=params, headers=headers)

        assert response.status_code == 200, (params, response.text)
        listed = response.json()
        assert all(task["user_id"] == intruder for task in listed), params
        assert {task["id"] for task in listed}.isdisjoint(task["id"] for task in owners_tasks)
        assert "Alice's" not in response.text
        # The total counts only the intruder's own tasks: one at most, whatever the filter.
        assert int(response.headers["x-total-count"]) <= 1, params
    assert [row["user_id"] for row in await rows(app)].count(OWNER) == len(owners_tasks)


@pytest.mark.parametrize("intruder", FEW_INTRUDERS)
@pytest.mark.parametrize(("path", "method", "operation"), USER_OPERATIONS, ids=_ids(USER_OPERATIONS))
async def test_intruders_own_path_touches_only_their_own_rows(
    client: httpx.AsyncClient,
    app: Starlette,
    tokens: Tokens,
    owners_tasks: list[dict[str, Any]],
    path: str,
    method: str,
    operation: Operation,
    intruder: str,
) -> None:
    headers = tokens.headers(intruder)
    created = await client.post(f"/api/{quote(intruder, safe='')}/tasks", json={"title": "mine"}, headers=headers)
    assert created.status_code == 201, created.text
    owners_before = [row for row in await rows(app) if row["user_id"] == OWNER]

    for body in bodies(operation):
        response = await client.request(method, url(path, intruder, created.json()["id"]), json=body, headers=headers)

        assert response.status_code < 400, (method, path, response.text)
        assert "Alice's" not in response.text

    assert [row for row in await rows(app) if row["user_id"] == OWNER] == owners_before
    assert all(row["user_id"] in (OWNER, intruder) for row in await rows(app))


@pytest.mark.parametrize("path", OTHER_GETS)
async def test_routes_without_a_user_never_show_the_owners_tasks(
    client: httpx.AsyncClient, tokens: Tokens, owners_tasks: list[dict[str, Any]], path: str
) -> None:
    response = await client.get(path, headers=tokens.headers("bob"))

    assert response.status_code in (200, 503), response.text
    assert "Alice's" not in response.text
    assert "launch codes" not in response.text
