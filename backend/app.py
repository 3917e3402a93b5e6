"""The Starlette application: routes, middleware, error handlers, lifespan.

Startup never blocks the server: the lifespan starts a task that connects to
the database (retrying transient failures) and applies migrations, while
/health already answers 200 and the API answers 503 with Retry-After. That
task first imports, in a thread, what the requests and the database need
beyond the port (the database driver, joserfc and cryptography, httpx: a
third of the imports), so the port answers before they are loaded. The
outcome lands in the app's `Startup` (backend/state.py): a server watching it
stops with the named cause of a permanent failure (bad password, missing
database...) or, with WORKERS > 1, hands over once it is ready; unwatched, a
failure is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException

from backend import openapi
from backend.database import Database
from backend.diagnostics.database_check import check_tls
from backend.endpoints import dev, health, me, tasks
from backend.errors import (
    ApiError,
    AppError,
    handle_api_error,
    handle_http_exception,
    handle_unexpected,
)
from backend.middleware import middleware
from backend.migrations import LATEST_VERSION, connect_and_migrate
from backend.preload import preload
from backend.settings import Settings, load_settings, weak_secret_warning
from backend.shutdown import quiet_cancelled_callbacks
from backend.state import AppState, app_state, keep_state

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the application; nothing connects until its lifespan starts."""
    settings = settings or load_settings()
    app = Starlette(
        routes=[
            *tasks.routes,
            *me.routes,
            *health.routes,
            *openapi.routes,
            *([] if settings.is_production else dev.routes),
        ],
        middleware=middleware(settings),
        exception_handlers={
            ApiError: handle_api_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
        lifespan=_lifespan,
    )
    # Starlette would answer `/api/alice/tasks/` with a 307 to an absolute URL built from the Host
    # header (`http://evil.example/...`, and always http). A trailing slash is a 404 naming the path
    # without it instead (backend/errors.py; docs/api.md says why not a relative redirect).
    app.router.redirect_slashes = False
    keep_state(app, AppState(settings=settings, db=Database(settings)))
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    state = app_state(app)
    _log_secret(state.settings)
    quiet_cancelled_callbacks(asyncio.get_running_loop())
    startup = asyncio.create_task(_start(state))
    try:
        yield
    finally:
        startup.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await startup
        await state.aclose()


def _log_secret(settings: Settings) -> None:
    if settings.secret_is_generated:
        logger.info("BETTER_AUTH_SECRET is not set: HS256 tokens from `inv token` use the secret in var/dev-secret")
    if settings.secret_weakness:
        logger.warning("SECRET_WEAK: %s", weak_secret_warning(settings.secret_weakness))


async def _start(state: AppState) -> None:
    db = state.db
    await asyncio.to_thread(preload, db.target)
    try:
        await connect_and_migrate(db, state.settings.db_connect_retry_seconds)
    except AppError as error:
        state.startup.fail(error)
        if not state.startup.watched:  # a watching server prints the cause once, as it stops
            logger.error("Cannot start: %s: %s. %s", error.code, error.message, error.fix)
        return
    _log_tls(state.settings, db)
    state.startup.succeed()
    logger.info("Ready: %s at schema version %d (%s)", db.target.display, LATEST_VERSION, db.describe())


def _log_tls(settings: Settings, db: Database) -> None:
    finding = check_tls(settings, db.target)
    if finding is None:
        return
    if finding.status == "ok":
        logger.info("Database TLS: %s", finding.message)
    else:
        logger.warning("Database TLS: %s: %s. %s", finding.code, finding.message, finding.fix)
