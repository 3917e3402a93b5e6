"""CPU per request inside our app, with no HTTP server and no concurrency.

    python -m benchmarks cost list [--requests 2000] [--profile] [--tokens eddsa|hs256] [--levers token-cache]
    python -m benchmarks cost list --compare [--levers token-cache,request-id]

Calls the ASGI app directly, one request after another, against the
benchmark's PostgreSQL, and reports the process's CPU time per request.
Less sensitive to a busy machine than the load test (other processes take
wall time, not our CPU time), so it shows what a change to our code saves.
`--profile` prints cProfile's top functions as well; `--levers` applies
benchmarks/levers.py's prototypes first. `--compare` times ours without the
levers, with each and with all of them, in turns batch by batch (the lowest
CPU time of 7 batches each), so a busy moment hits every variant alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import pstats
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from starlette.applications import Starlette

from backend.app import create_app
from benchmarks import levers, postgres
from benchmarks.tokens import KINDS, Provider

_CREATE_BODY = b'{"title": "Benchmark task", "description": "Created by the cost probe"}'


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks cost")
    parser.add_argument("scenario", choices=["list", "create", "get", "toggle", "health"])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--tokens", choices=KINDS, default="eddsa")
    parser.add_argument("--levers", default="", help="comma-separated, from: " + ", ".join(levers.LEVERS))
    parser.add_argument("--compare", action="store_true", help="ours without, with each and with all the levers")
    opts = parser.parse_args(argv)
    if opts.compare:
        opts.levers = opts.levers or ",".join(levers.LEVERS)
    else:
        levers.apply(opts.levers)
    with postgres.BenchPostgres() as pg, Provider() as provider:
        url = pg.create("cost")
        task_id = postgres.reseed(url)["alice"][0]
        app = create_app(provider.settings(url))
        request = _request(app, opts.scenario, task_id, provider.token(opts.tokens))
        asyncio.run(_compare(app, request, opts) if opts.compare else _measure(app, request, opts))
    print(f"({opts.tokens} tokens, levers: {opts.levers or 'none'})")
    return 0


async def _compare(app: Starlette, request: Callable[[], Awaitable[int]], opts: argparse.Namespace) -> None:
    chosen = opts.levers.split(",")
    variants = {"ours": "", **{f"+ {name}": name for name in chosen}}
    if len(chosen) > 1:
        variants["+ all"] = opts.levers
    count = max(opts.requests // 4, 1)
    best = dict.fromkeys(variants, float("inf"))
    async with _started(app):
        for _ in range(7):
            for name, names in variants.items():
                undo = levers.apply(names)
                try:
                    for _ in range(20):  # a lever's first requests fill its caches
                        await request()
                    began = time.process_time()
                    for _ in range(count):
                        await request()
                    best[name] = min(best[name], (time.process_time() - began) / count * 1e6)
                finally:
                    undo()
    for name, cpu_us in best.items():
        print(f"{opts.scenario} {name:<16} {cpu_us:6.0f} us CPU per request ({cpu_us - best['ours']:+.0f})")


@contextlib.asynccontextmanager
async def _started(app: Starlette) -> AsyncIterator[None]:
    async with app.router.lifespan_context(app):
        while not app.state.ready:  # noqa: ASYNC110 - the app exposes a flag, not an event
            await asyncio.sleep(0.01)
        yield


async def _measure(app: Starlette, request: Callable[[], Awaitable[int]], opts: argparse.Namespace) -> None:
    count = opts.requests
    async with _started(app):
        for _ in range(200):
            await request()
        profiler = cProfile.Profile() if opts.profile else None
        if profiler:
            profiler.enable()
        rounds = []
        for _ in range(3):
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(count):
                await request()
            rounds.append(((time.process_time() - cpu) / count * 1e6, (time.perf_counter() - wall) / count * 1e6))
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    cpu_us, wall_us = sorted(rounds)[1]
    print(f"{opts.scenario}: {cpu_us:.0f} us CPU, {wall_us:.0f} us wall per request (median of 3 x {count})")


def _request(app: Starlette, scenario: str, task_id: int, token: str) -> Callable[[], Awaitable[int]]:
    auth = [(b"authorization", f"Bearer {token}".encode())]
    json = [(b"content-type", b"application/json")]
    calls = {
        "list": ("GET", "/api/alice/tasks", b"limit=20", auth, b""),
        "create": ("POST", "/api/alice/tasks", b"", auth + json, _CREATE_BODY),
        "get": ("GET", f"/api/alice/tasks/{task_id}", b"", auth, b""),
        "toggle": ("PATCH", f"/api/alice/tasks/{task_id}/complete", b"", auth, b""),
        "health": ("GET", "/health", b"", [], b""),
    }
    method, path, query, headers, body = calls[scenario]

    async def request() -> int:
        status = await _call(app, method, path, query=query, headers=headers, body=body)
        if status >= 300:
            raise RuntimeError(f"{method} {path} answered {status}")
        return status

    return request


async def _call(
    app: Starlette, method: str, path: str, *, query: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"bench"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    received = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal received
        if received:  # the app never reads past the body; a disconnect would only come later
            await asyncio.Event().wait()
        received = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
