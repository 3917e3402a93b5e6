"""What the application keeps for its requests, typed, under one name on `app.state`.

`create_app` (backend/app.py) builds one `AppState`; endpoints, auth and the
server read it with `app_state(app)` instead of loose attributes on
Starlette's untyped `State`. `Startup` is the outcome of the app's startup
(connect and migrate): endpoints ask whether it is ready, the server waits
on it to stop with the named cause of a failure, or to hand over to workers.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Any, Final

from starlette.applications import Starlette

if TYPE_CHECKING:
    from backend.database import Database
    from backend.errors import AppError
    from backend.settings import Settings
    from backend.verifier import TokenVerifier

_NAME: Final = "backend"


class Startup:
    """The outcome of the app's startup: pending, then ready or failed for good with `error`."""

    def __init__(self) -> None:
        self.ready = False
        self.error: AppError | None = None
        self.watched = False
        self._done = asyncio.Event()

    def succeed(self) -> None:
        self.ready = True
        self._done.set()

    def fail(self, error: AppError) -> None:
        self.error = error
        self._done.set()

    async def watch(self) -> AppError | None:
        """Wait for the outcome: None once ready, else the error (the watcher reports it, the app does not log it)."""
        self.watched = True
        await self._done.wait()
        return self.error


@dataclasses.dataclass
class AppState:
    """Everything the app keeps for its requests; made by `create_app`, closed by its lifespan."""

    settings: Settings
    db: Database
    startup: Startup = dataclasses.field(default_factory=Startup)
    # Built on the first request for it: the routes are fixed by then.
    openapi: dict[str, Any] | None = None
    _verifier: TokenVerifier | None = dataclasses.field(default=None, repr=False)

    @property
    def verifier(self) -> TokenVerifier:
        """The token verifier, built at first use: its libraries are imported by then (backend/preload.py)."""
        if self._verifier is None:
            from backend.verifier import TokenVerifier  # joserfc and cryptography: imported after the port answers

            self._verifier = TokenVerifier(self.settings)
        return self._verifier

    @verifier.setter
    def verifier(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier

    async def aclose(self) -> None:
        """Close what the app opened: the key fetcher's connections, then the database."""
        if self._verifier is not None:
            await self._verifier.aclose()
        await self.db.disconnect()


def keep_state(app: Starlette, state: AppState) -> None:
    setattr(app.state, _NAME, state)


def app_state(app: Starlette) -> AppState:
    """The state `create_app` gave `app`."""
    state: AppState = getattr(app.state, _NAME)
    return state
