"""The task routes: /api/{user_id}/tasks and /api/{user_id}/tasks/{task_id}."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from backend import queries
from backend.auth import Principal, authenticate
from backend.endpoints import database_or_503
from backend.errors import ForbiddenError, NotFoundError
from backend.payloads import read_body, read_optional_body, read_query
from backend.routing import ApiRoute, JSONResponse, Operation
from backend.schemas import CompletionSet, Task, TaskCreate, TaskListQuery, TaskUpdate

_AUTH = (401, 403, 503)
_BODY = (400, 408, 413, 415, 422)


async def list_tasks(request: Request) -> Response:
    owner = await _owner(request)
    query = read_query(request, TaskListQuery)
    tasks, total = await queries.list_tasks(database_or_503(request), owner.user_id, query)
    return JSONResponse(tasks, headers={"X-Total-Count": str(total)})


async def create_task(request: Request) -> Response:
    owner = await _owner(request)
    data = await read_body(request, TaskCreate)
    task = await queries.create_task(database_or_503(request), owner.user_id, data)
    return JSONResponse(task, status_code=201, headers={"Location": _location(task)})


async def get_task(request: Request) -> Response:
    owner = await _owner(request)
    return JSONResponse(await _load_task_or_404(request, owner))


async def update_task(request: Request) -> Response:
    owner = await _owner(request)
    data = await read_body(request, TaskUpdate)
    task = await queries.update_task(database_or_503(request), owner.user_id, _task_id(request), data)
    return JSONResponse(_found(task, request))


async def complete_task(request: Request) -> Response:
    owner = await _owner(request)
    body = await read_optional_body(request, CompletionSet)
    completed = None if body is None else body.completed
    task = await queries.set_completed(database_or_503(request), owner.user_id, _task_id(request), completed)
    return JSONResponse(_found(task, request))


async def delete_task(request: Request) -> Response:
    owner = await _owner(request)
    if not await queries.delete_task(database_or_503(request), owner.user_id, _task_id(request)):
        raise _not_found(request)
    return Response(status_code=204)


async def _owner(request: Request) -> Principal:
    """The caller, who must be the user named in the path."""
    principal = await authenticate(request)
    if request.path_params["user_id"] != principal.user_id:
        raise ForbiddenError("The user in the path is not the token's user; use the token's own user id (sub)")
    return principal


async def _load_task_or_404(request: Request, owner: Principal) -> Task:
    return _found(await queries.get_task(database_or_503(request), owner.user_id, _task_id(request)), request)


def _found(task: Task | None, request: Request) -> Task:
    if task is None:
        raise _not_found(request)
    return task


def _not_found(request: Request) -> NotFoundError:
    # The same answer whether the task is missing or someone else's.
    return NotFoundError(f"No task {_task_id(request)} for this user", code="TASK_NOT_FOUND")


def _task_id(request: Request) -> int:
    task_id: int = request.path_params["task_id"]
    return task_id


def _location(task: Task) -> str:
    return f"/api/{quote(task.user_id, safe='')}/tasks/{task.id}"


routes = [
    ApiRoute(
        "/api/{user_id}/tasks",
        Operation(
            "GET",
            list_tasks,
            "List the user's tasks",
            response=list[Task],
            query=TaskListQuery,
            errors=(*_AUTH, 422),
            response_headers={"X-Total-Count": "How many tasks match, ignoring limit and offset."},
        ),
        Operation(
            "POST",
            create_task,
            "Create a task",
            status=201,
            response=Task,
            body=TaskCreate,
            errors=(*_AUTH, *_BODY),
            response_headers={"Location": "The new task's URL."},
        ),
    ),
    ApiRoute(
        "/api/{user_id}/tasks/{task_id:int}",
        Operation("GET", get_task, "Get one task", response=Task, errors=(*_AUTH, 404)),
        Operation(
            "PUT",
            update_task,
            "Update a task (fields left out keep their value)",
            response=Task,
            body=TaskUpdate,
            errors=(*_AUTH, 404, *_BODY),
        ),
        Operation("DELETE", delete_task, "Delete a task", status=204, errors=(*_AUTH, 404)),
    ),
    ApiRoute(
        "/api/{user_id}/tasks/{task_id:int}/complete",
        Operation(
            "PATCH",
            complete_task,
            "Toggle completion, or set it with a body",
            response=Task,
            body=CompletionSet,
            body_required=False,
            errors=(*_AUTH, 404, *_BODY),
        ),
    ),
]
