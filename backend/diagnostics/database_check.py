"""Can the backend reach its database, and is the schema current?

It connects the way the server does (the normalised URL, backend/database.py)
but once, with a short timeout, and names the failure through
backend/dberrors.py. It never creates anything: a SQLite file that does not
exist yet is reported, not made, and no migration is applied. For PostgreSQL
a second line says which TLS verification is in force (backend/dbtls.py), and
a third names a transaction pooler found in between (backend/diagnostics/pooler_check.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Final

from backend.database import Database
from backend.dberrors import classify, sqlite_unusable
from backend.dburl import DatabaseTarget, parse_database_url
from backend.diagnostics.results import Result, fail, found, ok, warn
from backend.migrations import LATEST_VERSION, current_version
from backend.settings import Settings, is_loopback_host

CHECK: Final = "database"
TLS_CHECK: Final = "database_tls"
_VERIFY_HOW: Final = (
    "system works for a public CA such as Neon's; Supabase and RDS give a CA file to name instead of system"
)
MIGRATE_FIX: Final = "`inv run` applies pending migrations when it starts, or run `inv migrate` now"


async def check_database(settings: Settings, *, seconds: float = 3.0) -> list[Result]:
    """Reachable with the schema current, or the named reason it is not; then the pooler line, if any."""
    target = parse_database_url(settings.database_url)
    if target.sqlite_path is not None and not target.sqlite_path.exists():
        return [_new_sqlite_file(target.sqlite_path)]
    if target.sqlite_path is not None and not target.sqlite_path.is_file():
        return [_sqlite_unusable(target.sqlite_path, "it is not a regular file")]
    db = Database(dataclasses.replace(settings, db_connect_timeout=seconds, db_pool_size=1))
    try:
        async with asyncio.timeout(seconds + 1):
            await db.connect()
            version = await current_version(db)
    except Exception as error:  # every cause is named by classify; unknown ones as DB_CONNECT_FAILED
        return [found(CHECK, classify(error, target).problem), *_tls_lines(settings, target)]
    finally:
        await _disconnect(db)
    pooler = await _pooler(db, seconds)
    return [_schema_result(target, version), *_tls_lines(settings, target), *pooler]


async def _pooler(db: Database, seconds: float) -> list[Result]:
    """The pooler line on PostgreSQL when there is one to talk about; none when the probe itself fails."""
    if db.dialect != "postgresql":
        return []
    # asyncpg's: imported when the check runs (the server imports this module for `check_tls`).
    from backend.diagnostics.pooler_check import find_pooler, pooler_result
    from backend.pgdriver import PostgresDriver

    assert isinstance(db.driver, PostgresDriver)
    try:
        async with asyncio.timeout(seconds + 1):
            finding = await find_pooler(db.driver.open_connection)
    except Exception:  # a second connection refused (a connection limit): nothing to add
        return []
    result = pooler_result(db.target, finding)
    return [] if result is None else [result]


async def _disconnect(db: Database) -> None:
    # The check's verdict is already made; closing is best effort.
    with contextlib.suppress(Exception):
        await db.disconnect()


def check_tls(settings: Settings, target: DatabaseTarget) -> Result | None:
    """Which TLS verification the connection uses (None for SQLite); the startup log shows it too.

    A warning only in production, for a server on another machine whose
    certificate is not verified: in development a local or compose database
    without TLS is normal, and the line says what is in force either way.
    """
    if target.tls is None:
        return None
    text = target.tls.describe(target.host)
    if not settings.is_production or target.tls.verified or _is_local(target.host):
        return ok(TLS_CHECK, text)
    if target.tls.mode == "disable":
        return warn(
            TLS_CHECK,
            code="DB_TLS_OFF",
            message=f"{text}: the traffic to {target.host} is not encrypted",
            fix=f"add sslmode=verify-full&sslrootcert=system to DATABASE_URL (at least sslmode=require); {_VERIFY_HOW}",
        )
    return warn(
        TLS_CHECK,
        code="DB_TLS_UNVERIFIED",
        message=f"{text}: anyone in the path to {target.host} could pose as the database",
        fix=f"add sslmode=verify-full&sslrootcert=system to DATABASE_URL; {_VERIFY_HOW}",
    )


def _tls_lines(settings: Settings, target: DatabaseTarget) -> list[Result]:
    found = check_tls(settings, target)
    return [] if found is None else [found]


def _is_local(host: str) -> bool:
    return host.startswith("/") or is_loopback_host(host)


def _schema_result(target: DatabaseTarget, version: int) -> Result:
    where = target.display
    if version < LATEST_VERSION:
        state = "it has no tables yet" if version == 0 else f"its schema is at version {version}"
        return warn(
            CHECK,
            code="DB_SCHEMA_BEHIND",
            message=f"connected to {where}, but {state}; this code expects version {LATEST_VERSION}",
            fix=MIGRATE_FIX,
        )
    if version > LATEST_VERSION:
        return fail(
            CHECK,
            code="DB_SCHEMA_AHEAD",
            message=f"{where} has schema version {version}, newer than this code knows ({LATEST_VERSION})",
            fix="update your checkout (`git pull`): a newer backend migrated this database",
        )
    return ok(CHECK, f"connected to {where}; schema current (version {version})")


def _new_sqlite_file(path: Path) -> Result:
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        return _sqlite_unusable(path, f"{folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        return _sqlite_unusable(path, f"the folder {folder} is not writable")
    return ok(CHECK, f"SQLite file {path} does not exist yet; `inv run` creates it")


def _sqlite_unusable(path: Path, reason: str) -> Result:
    return found(CHECK, sqlite_unusable(path, reason).problem)
