"""Probes: /health (the process answers) and /ready (it can serve the API)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from backend.database import Database
from backend.errors import AppError
from backend.migrations import LATEST_VERSION, current_version
from backend.routing import ApiRoute, JSONResponse, Operation
from backend.schemas import Check, Health, Readiness
from backend.settings import Settings
from backend.state import app_state

_HEALTHY = Health("ok")
_KINDS = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}


async def health(request: Request) -> Response:
    return JSONResponse(_HEALTHY)


async def ready(request: Request) -> Response:
    state = app_state(request.app)
    checks = await _checks(state.db, state.startup.ready, _where(state.db, state.settings))
    ok = all(check.ok for check in checks)
    status = Readiness("ready" if ok else "not_ready", checks)
    headers = {} if ok else {"Retry-After": "2"}
    return JSONResponse(status, status_code=200 if ok else 503, headers=headers)


def _where(db: Database, settings: Settings) -> str:
    # /ready answers anyone: in production it names the kind of database, not its user, host or file.
    if settings.is_production:
        return _KINDS.get(db.target.dialect, "the database")
    return db.target.display


async def _checks(db: Database, started: bool, where: str) -> list[Check]:
    if not db.is_connected:
        return [Check("database", False, f"not connected to {where} yet")]
    try:
        version = await current_version(db)
    except AppError:
        return [Check("database", False, f"{where} is not answering")]
    schema_ok = version == LATEST_VERSION and started
    return [
        Check("database", True, f"{where} answers"),
        Check("schema", schema_ok, f"schema version {version} of {LATEST_VERSION}"),
    ]


routes = [
    ApiRoute(
        "/health", Operation("GET", health, "Liveness: the process answers", response=Health, authenticated=False)
    ),
    ApiRoute(
        "/ready",
        Operation(
            "GET",
            ready,
            "Readiness: database reachable, schema current",
            response=Readiness,
            errors=(503,),
            failure_response=Readiness,
            authenticated=False,
        ),
    ),
]
