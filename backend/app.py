"""The Starlette application: routes, middleware, error handlers, lifespan.

Startup never blocks the server: the lifespan starts a task that connects to
the database (retrying transient failures) and applies migrations, while
/health already answers 200 and the API answers 503 with Retry-After. A
permanent failure (bad password, missing database...) is reported through
`on_fatal`, which the server uses to stop with the named cause; `on_ready`
tells it startup is done (with WORKERS > 1 the parent then hands over).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException

from backend import openapi
from backend.auth import TokenVerifier
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
from backend.settings import Settings, load_settings, weak_secret_warning
from backend.shutdown import quiet_cancelled_callbacks

logger = logging.getLogger(__name__)

FatalHandler = Callable[[AppError], None]
ReadyHandler = Callable[[], None]


def create_app(
    settings: Settings | None = None, *, on_fatal: FatalHandler | None = None, on_ready: ReadyHandler | None = None
) -> Starlette:
    """Build the application; nothing connects until its lifespan starts."""
    settings = settings or load_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if settings.secret_is_generated:
            logger.info("BETTER_AUTH_SECRET is not set: HS256 tokens from `inv token` use the secret in var/dev-secret")
        if settings.secret_weakness:
            logger.warning("SECRET_WEAK: %s", weak_secret_warning(settings.secret_weakness))
        quiet_cancelled_callbacks(asyncio.get_running_loop())
        startup = asyncio.create_task(_start(app, settings, on_fatal, on_ready))
        try:
            yield
        finally:
            startup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await startup
            await app.state.verifier.aclose()
            await app.state.db.disconnect()

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
        lifespan=lifespan,
    )
    # Starlette would answer `/api/alice/tasks/` with a 307 to an absolute URL built from the Host
    # header (`http://evil.example/...`, and always http). A trailing slash is a 404 naming the path
    # without it instead (backend/errors.py; docs/api.md says why not a relative redirect).
    app.router.redirect_slashes = False
    app.state.settings = settings
    app.state.db = Database(settings)
    app.state.verifier = TokenVerifier(settings)
    app.state.ready = False
    app.state.fatal = None
    app.state.openapi = None
    return app


async def _start(
    app: Starlette, settings: Settings, on_fatal: FatalHandler | None, on_ready: ReadyHandler | None
) -> None:
    db: Database = app.state.db
    try:
        await connect_and_migrate(db, settings.db_connect_retry_seconds)
    except AppError as error:
        app.state.fatal = error
        if on_fatal is not None:
            on_fatal(error)  # the server prints the cause once, as it stops
        else:
            logger.error("Cannot start: %s: %s. %s", error.code, error.message, error.fix)
        return
    _log_tls(settings, db)
    app.state.ready = True
    logger.info("Ready: %s at schema version %d (%s)", db.target.display, LATEST_VERSION, db.describe())
    if on_ready is not None:
        on_ready()


def _log_tls(settings: Settings, db: Database) -> None:
    finding = check_tls(settings, db.target)
    if finding is None:
        return
    if finding.status == "ok":
        logger.info("Database TLS: %s", finding.message)
    else:
        logger.warning("Database TLS: %s: %s. %s", finding.code, finding.message, finding.fix)
