"""Our server (`python -m backend`) with timers on the path of a request, for benchmarks/tail.py.

    PROBE_OUT=/tmp/probe.json python -m benchmarks.probe

Records, per API request: the wait for a connection (backend/pgpool.py: the
turn in the line, or opening a connection), the time in the app (from the
ASGI call to the last body byte handed to Hypercorn); and, while requests
are in flight, the event loop's lag every 5 ms. Written as JSON to PROBE_OUT
when the server exits. Bench-only: it wraps names the server imports.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import backend.app
import backend.server
from backend.pgpool import ConnectionPool, Pooled

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
App = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

SAMPLES: dict[str, list[float]] = {"line": [], "app": [], "lag": []}
_LAG_PERIOD = 0.005
_IN_FLIGHT = [0]  # /api requests in the app: the loop is sampled only under load


def main(argv: list[str]) -> int:
    _time_the_line()
    _time_the_app()
    atexit.register(_dump, os.environ["PROBE_OUT"])
    return backend.server.main()


def _time_the_line() -> None:
    acquire = ConnectionPool.acquire

    async def timed(self: ConnectionPool) -> Pooled:
        began = time.perf_counter()
        pooled = await acquire(self)
        SAMPLES["line"].append(time.perf_counter() - began)
        return pooled

    ConnectionPool.acquire = timed  # type: ignore[method-assign]


def _time_the_app() -> None:
    # backend/server.py imported `create_app` by name: replace it there.
    create_app = backend.app.create_app

    def timed_app(*args: Any, **kwargs: Any) -> Any:
        return _Timed(create_app(*args, **kwargs))

    setattr(backend.server, "create_app", timed_app)  # noqa: B010 - a private import of server.py


class _Timed:
    """The app, timed per /api request; starts the loop sampler on the first request."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.state = getattr(app, "state", None)  # the server waits on the app's startup there (backend/state.py)
        self._sampler: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        if self._sampler is None and scope["type"] == "http":
            self._sampler = asyncio.get_running_loop().create_task(_sample_the_loop())
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()

        async def timed_send(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                SAMPLES["app"].append(time.perf_counter() - began)

        _IN_FLIGHT[0] += 1
        try:
            await self.app(scope, receive, timed_send)
        finally:
            _IN_FLIGHT[0] -= 1


async def _sample_the_loop() -> None:
    while True:
        began = time.perf_counter()
        await asyncio.sleep(_LAG_PERIOD)
        if not _IN_FLIGHT[0]:
            continue
        SAMPLES["lag"].append(time.perf_counter() - began - _LAG_PERIOD)


def _dump(path: str) -> None:
    with open(path, "w") as file:
        json.dump(SAMPLES, file)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
