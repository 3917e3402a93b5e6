"""HTTP endpoints, one module per resource; each exports its `routes`."""

from __future__ import annotations

from starlette.requests import Request

from backend.database import Database
from backend.errors import ServiceUnavailableError
from backend.state import app_state


def database_or_503(request: Request) -> Database:
    """The application's database, or a 503 while startup has not finished."""
    state = app_state(request.app)
    if not state.startup.ready:
        raise ServiceUnavailableError("The service is starting and its database is not ready yet; retry shortly")
    return state.db
