"""The ceiling: bare Starlette endpoints on our exact Hypercorn configuration.

The same paths and the same JSON shapes as the API (a page of 20 tasks, one
task, `{"status": "ok"}`), encoded per request with msgspec, but no middleware,
no token, no database. Whatever our server cannot beat here is the HTTP
layer's cost (Hypercorn + Starlette), not ours. Run by the bench harness:

    PORT=8123 python -m benchmarks.ceiling
"""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime
from typing import Any, cast

import msgspec
import uvloop
from hypercorn.asyncio import serve
from hypercorn.typing import ASGIFramework
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from backend.schemas import Health, Task
from backend.server import bind_sockets, hypercorn_config
from backend.settings import Settings

_NOW = datetime(2026, 1, 1, tzinfo=UTC)
_ENCODER = msgspec.json.Encoder()


def _task(task_id: int) -> Task:
    return Task(task_id, "alice", f"Task {task_id}", "Seeded for the benchmark", False, _NOW, _NOW)


_PAGE = [_task(i) for i in range(1, 21)]


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_ENCODER.encode(content), status, headers, media_type="application/json")


async def list_tasks(request: Request) -> Response:
    return _json(_PAGE, headers={"X-Total-Count": "100"})


async def create_task(request: Request) -> Response:
    await request.body()
    return _json(_task(101), 201, {"Location": "/api/alice/tasks/101"})


async def one_task(request: Request) -> Response:
    return _json(_task(request.path_params["task_id"]))


async def health(request: Request) -> Response:
    return _json(Health("ok"))


app = Starlette(
    routes=[
        Route("/api/{user_id}/tasks", list_tasks, methods=["GET"]),
        Route("/api/{user_id}/tasks", create_task, methods=["POST"]),
        Route("/api/{user_id}/tasks/{task_id:int}", one_task, methods=["GET"]),
        Route("/api/{user_id}/tasks/{task_id:int}/complete", one_task, methods=["PATCH"]),
        Route("/health", health),
    ]
)


async def _main() -> None:
    settings = Settings(hosts=("127.0.0.1",), port=int(os.environ["PORT"]))
    config = hypercorn_config(settings, bind_sockets(settings.hosts, settings.port))
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await serve(cast(ASGIFramework, app), config, shutdown_trigger=stop.wait)


if __name__ == "__main__":
    uvloop.run(_main())
