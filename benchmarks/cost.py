"""CPU per request inside our app, with no HTTP server and no concurrency.

    python -m benchmarks cost list [--requests 2000] [--profile] [--tokens eddsa|hs256] [--without token-cache]
    python -m benchmarks cost list --compare [--levers token-cache]
    python -m benchmarks cost list --against main [--turns 3]

Calls the ASGI app directly, one request after another, against the
benchmark's PostgreSQL, and reports the process's CPU time per request.
Less sensitive to a busy machine than the load test (other processes take
wall time, not our CPU time), so it shows what a change to our code saves.
`--profile` prints cProfile's top functions as well; `--without` switches
levers off (benchmarks/levers.py). `--compare` times ours as it is, without
each lever and without all of them, in turns batch by batch (the lowest CPU
time of 7 batches each), so a busy moment hits every variant alike.
`--against REF` runs this tool with a git ref's backend and with the working
tree's, in turns (`--turns` each), for what no switch turns off; with
`--without`, the switched-off levers are off on both sides.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import pstats
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from backend.app import create_app
from benchmarks import levers, postgres, trees
from benchmarks.tokens import KINDS, Provider

_CREATE_BODY = b'{"title": "Benchmark task", "description": "Created by the cost probe"}'
_CPU = re.compile(r": (\d+) us CPU")
Request = Callable[[], Awaitable[int]]


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks cost")
    parser.add_argument("scenario", choices=["list", "create", "get", "toggle", "health"])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--tokens", choices=KINDS, default="eddsa")
    parser.add_argument("--without", default="", help="levers switched off, from: " + ", ".join(levers.SWITCHES))
    parser.add_argument("--compare", action="store_true", help="ours, without each lever and without all")
    parser.add_argument("--levers", default=",".join(levers.SWITCHES), help="the levers --compare switches off")
    parser.add_argument("--against", metavar="REF", help="a git ref to compare the working tree with")
    parser.add_argument("--turns", type=int, default=3, help="runs of each tree with --against")
    opts = parser.parse_args(argv)
    if opts.against:
        return _against(opts)
    with postgres.BenchPostgres() as pg, Provider() as provider:
        url = pg.create("cost")
        task_id = postgres.reseed(url)["alice"][0]
        token = provider.token(opts.tokens)
        if opts.compare:
            variants = _variants(levers.chosen(opts.levers))
            apps = {name: create_app(levers.settings_without(provider.settings(url), off)) for name, off in variants}
            requests = {name: _request(app, opts.scenario, task_id, token) for name, app in apps.items()}
            asyncio.run(_compare(apps, requests, opts))
        else:
            app = create_app(levers.settings_without(provider.settings(url), levers.chosen(opts.without)))
            asyncio.run(_measure(app, _request(app, opts.scenario, task_id, token), opts))
    print(f"({opts.tokens} tokens, switched off: {opts.without or 'none'})" if not opts.compare else "")
    return 0


def _variants(chosen: list[str]) -> list[tuple[str, list[str]]]:
    variants = [("ours", []), *((f"- {name}", [name]) for name in chosen)]
    if len(chosen) > 1:
        variants.append(("- all", chosen))
    return variants


async def _compare(apps: dict[str, Starlette], requests: dict[str, Request], opts: argparse.Namespace) -> None:
    count = max(opts.requests // 4, 1)
    best = dict.fromkeys(apps, float("inf"))
    async with contextlib.AsyncExitStack() as stack:
        for app in apps.values():
            await stack.enter_async_context(_started(app))
        for _ in range(7):
            for name, request in requests.items():
                for _ in range(20):  # the first requests after another variant's warm the caches again
                    await request()
                began = time.process_time()
                for _ in range(count):
                    await request()
                best[name] = min(best[name], (time.process_time() - began) / count * 1e6)
    for name, cpu_us in best.items():
        print(f"{opts.scenario} {name:<16} {cpu_us:6.0f} us CPU per request ({cpu_us - best['ours']:+.0f})")


def _against(opts: argparse.Namespace) -> int:
    """This tool on REF's backend and on ours, in turns; the lowest CPU per request of each."""
    args = [opts.scenario, "--requests", str(opts.requests), "--tokens", opts.tokens, "--without", opts.without]
    label = trees.describe(opts.against)
    best = {"working tree": float("inf"), label: float("inf")}
    with trees.checkout(opts.against) as tree:
        for _ in range(opts.turns):
            for name, folder in (("working tree", trees.ROOT), (label, tree)):
                best[name] = min(best[name], _cpu_per_request(folder, args))
    ours = best["working tree"]
    for name, cpu_us in best.items():
        print(f"{opts.scenario} {name:<28} {cpu_us:6.0f} us CPU per request ({cpu_us - ours:+.0f})")
    off = opts.without or "none"
    print(f"(the lowest of {opts.turns} runs each, in turns; {opts.tokens} tokens, switched off: {off})")
    return 0


def _cpu_per_request(tree: Path, args: Sequence[str]) -> float:
    command = [*trees.python_with_backend_from(tree, "benchmarks.cost"), *args]
    run = subprocess.run(command, cwd=trees.ROOT, capture_output=True, text=True, check=False)
    found = _CPU.search(run.stdout)
    if run.returncode != 0 or found is None:
        raise SystemExit(f"cost with {tree}'s backend failed:\n{run.stdout}{run.stderr}")
    return float(found.group(1))


@contextlib.asynccontextmanager
async def _started(app: Starlette) -> AsyncIterator[None]:
    async with app.router.lifespan_context(app):
        while not _ready(app):  # noqa: ASYNC110 - polled the same way in every tree measured
            await asyncio.sleep(0.01)
        yield


def _ready(app: Starlette) -> bool:
    # backend/state.py's AppState; trees before it kept a loose `ready` flag on app.state.
    state = getattr(app.state, "backend", None)
    return bool(app.state.ready if state is None else state.startup.ready)


async def _measure(app: Starlette, request: Request, opts: argparse.Namespace) -> None:
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


def _request(app: Starlette, scenario: str, task_id: int, token: str) -> Request:
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
