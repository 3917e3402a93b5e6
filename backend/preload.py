"""What the app imports once its port answers, in a thread, instead of before.

The token verifier (joserfc, cryptography), the key fetch (httpx) and the
database driver (asyncpg, or `databases` with SQLAlchemy for SQLite) are
about a third of a start's imports, and none of them is needed to answer
`/health`. The app's startup task (backend/app.py) imports them with
`asyncio.to_thread(preload, target)`, so the event loop answers meanwhile;
code that needs one of them earlier imports it on the spot, as usual.
"""

from __future__ import annotations

import importlib
from typing import Final

from backend.database import driver_module
from backend.dburl import DatabaseTarget

LATER: Final = ("backend.verifier", "backend.diagnostics.auth_check")


def preload(target: DatabaseTarget) -> None:
    """Import the modules the first requests and the database will need (blocking: run it in a thread)."""
    for name in (driver_module(target), *LATER):
        importlib.import_module(name)
