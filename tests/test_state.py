"""The app's typed state and its startup's outcome (backend/state.py)."""

from __future__ import annotations

import asyncio

from backend.app import create_app
from backend.errors import PortInUseError
from backend.settings import Settings
from backend.state import Startup, app_state


async def test_a_watcher_gets_the_error_of_a_failed_start() -> None:
    startup = Startup()
    waiter = asyncio.create_task(startup.watch())
    await asyncio.sleep(0)
    error = PortInUseError("taken")

    startup.fail(error)

    assert await waiter is error
    assert (startup.watched, startup.ready, startup.error) == (True, False, error)


async def test_a_watcher_gets_none_once_ready() -> None:
    startup = Startup()
    startup.succeed()

    assert await startup.watch() is None
    assert startup.ready


def test_create_app_keeps_one_typed_state_not_yet_started() -> None:
    settings = Settings(database_url="sqlite:///never-opened.sqlite3")

    state = app_state(create_app(settings))

    assert state.settings is settings
    assert (state.startup.ready, state.startup.error, state.openapi) == (False, None, None)
