"""WORKERS > 1: Hypercorn's process manager, and the app of each worker process.

The parent (backend/server.py) first serves the app itself until its startup
has connected and migrated, then calls `run_workers` with its sockets in the
Hypercorn config. Each worker is spawned afresh (logging configured anew) and
loads `worker_app`, named in Hypercorn's application path with what it needs
as arguments: the folder where a failed start is left for the parent
(backend/worker_failure.py), and the command line's setting overrides,
encoded because the path splits on colons (`HOST=::1`).
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Mapping
from typing import NoReturn

from hypercorn.config import Config
from hypercorn.run import run
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.app import create_app
from backend.errors import AppError, SettingsError
from backend.http1 import serve_http1_only
from backend.launch import Launch
from backend.logs import configure_logging
from backend.state import app_state
from backend.worker_failure import WorkerFailures

logger = logging.getLogger(__name__)


def run_workers(config: Config, workers: int, overrides: Mapping[str, str], *, reload: bool = False) -> int:
    """Run `workers` processes on the config's sockets until a signal: 0, or 1 when one exited abnormally.

    A worker that fails for good at its start stops them all, and its error is raised again (backend/worker_failure.py).
    With `reload` (Windows only: elsewhere backend/reloader.py does it), Hypercorn's reloader polls
    the files of every loaded module each second and restarts the workers on the sockets it keeps.
    """
    config.workers = workers  # only here: `serve()` in one process warns that it ignores `workers`
    config.use_reloader = reload
    failures = WorkerFailures.create()
    try:
        config.application_path = f"backend.workers:worker_app({failures.name!r}, {encode_overrides(overrides)!r})"
        status = run(config)
        failure = failures.first()
    finally:
        failures.remove()
    if failure is not None:
        raise failure
    if status != 0:
        logger.error("A worker process exited with status %d; all workers were stopped", status)
        return 1
    logger.info("Stopped cleanly")
    return 0


def worker_app(failures: str, overrides: str) -> ASGIApp:
    """The app of one worker process; a permanent failure at its start ends the worker (and so all of them)."""
    folder = WorkerFailures.named(failures)
    try:
        settings = Launch(overrides=decode_overrides(overrides)).settings()  # afresh: `.env` may have changed
    except SettingsError as error:
        _end_worker(folder, error)
    configure_logging(settings.log_level)
    serve_http1_only()  # the parent checked it before starting this worker
    return _EndOnFailedStart(create_app(settings), folder)


class _EndOnFailedStart:
    """Holds the worker's lifespan startup until the app is ready, and ends the worker if it fails.

    Hypercorn accepts connections only once the lifespan startup is complete: a
    worker that said so at once (as the app does, so that one process answers
    `/health` while it connects) would take requests before it is connected and
    answer them 503, though the parent was ready when it handed over.
    """

    def __init__(self, app: Starlette, failures: WorkerFailures) -> None:
        self.app = app
        self.failures = failures

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_when_ready(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                error = await app_state(self.app).startup.watch()
                if error is not None:
                    _end_worker(self.failures, error)
            await send(message)

        await self.app(scope, receive, send_when_ready)


def _end_worker(failures: WorkerFailures, error: AppError) -> NoReturn:
    failures.record(error)
    logging.shutdown()
    # At once: this worker never connected, so nothing is lost, and Hypercorn's
    # manager, which sees only exit statuses, then stops the other workers.
    os._exit(1)


def encode_overrides(overrides: Mapping[str, str]) -> str:
    """`overrides` as a string without colons, for Hypercorn's application path."""
    return base64.urlsafe_b64encode(json.dumps(dict(overrides)).encode()).decode()


def decode_overrides(encoded: str) -> dict[str, str]:
    decoded: dict[str, str] = json.loads(base64.urlsafe_b64decode(encoded))
    return decoded
