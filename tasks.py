"""The toolbelt: `inv --list` shows every task, `inv --help TASK` its options.

Tasks are thin wrappers over backend/; they turn its errors into one line and
an exit status.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, NoReturn

from invoke.context import Context
from invoke.tasks import task

if TYPE_CHECKING:
    from backend.settings import Settings


@task(help={"port": "port to listen on (default: PORT from .env, else 8000)"})
def run(c: Context, port: int | None = None) -> None:
    """Apply migrations and serve the API with Hypercorn until Ctrl+C."""
    from backend.logs import configure_logging
    from backend.server import serve

    settings = _settings()
    if port is not None:
        settings = dataclasses.replace(settings, port=port)
    configure_logging(settings.log_level)
    sys.exit(serve(settings))


@task
def migrate(c: Context) -> None:
    """Apply pending database migrations and say which."""
    import asyncio

    from backend.database import Database
    from backend.errors import AppError
    from backend.migrations import connect_and_migrate

    async def _migrate() -> list[str]:
        db = Database(_settings())
        try:
            return [f"{m.version:04d} {m.name}" for m in await connect_and_migrate(db, 0)]
        finally:
            await db.disconnect()

    try:
        applied = asyncio.run(_migrate())
    except AppError as error:
        _fail(error)
    print("\n".join(f"applied {name}" for name in applied) or "schema is current; nothing to apply")


@task(
    help={
        "sub": "user id the token is for (Better Auth's user id)",
        "ttl": "lifetime, e.g. 15m, 1h, 7d (default 1h)",
        "email": "email claim",
        "name": "name claim",
    }
)
def token(c: Context, sub: str, ttl: str = "1h", email: str | None = None, name: str | None = None) -> None:
    """Print a development token (HS256, signed with BETTER_AUTH_SECRET) for curl."""
    from backend.devtokens import mint_token, parse_duration
    from backend.errors import AppError

    try:
        print(mint_token(_settings(), sub, ttl_seconds=parse_duration(ttl), email=email, name=name))
    except AppError as error:
        _fail(error)


def _settings() -> Settings:
    from backend.errors import SettingsError
    from backend.settings import load_settings

    try:
        return load_settings()
    except SettingsError as error:
        _fail(error)


def _fail(error: Exception) -> NoReturn:
    code = getattr(error, "code", "ERROR")
    print(f"error {code}: {error}", file=sys.stderr)
    sys.exit(1)
