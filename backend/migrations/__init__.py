"""Apply the versioned migrations in backend/migrations/versions.py.

All pending migrations run in one transaction. On PostgreSQL the transaction
first takes an advisory lock that ends with it (`pg_advisory_xact_lock`), so
instances starting together apply each migration exactly once, and the lock
also works through PgBouncer in transaction mode, where a session lock would
leak to other clients. On SQLite a first write takes the file's write lock.
Nothing is ever dropped or deleted on startup.
"""

from __future__ import annotations

import logging

from backend.database import Database
from backend.migrations.versions import MIGRATIONS, Migration
from backend.settings import Settings

logger = logging.getLogger(__name__)

# Any constant unique to this application; pg_advisory_xact_lock takes a bigint.
_LOCK_KEY = 4_207_711_950_117

_CREATE_VERSIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
)
"""

LATEST_VERSION = MIGRATIONS[-1].version


async def apply_migrations(db: Database) -> list[Migration]:
    """Apply every pending migration; return those applied (none when current)."""
    if db.dialect == "sqlite":
        await db.execute(_CREATE_VERSIONS_TABLE)
    # Run again from the start if a transaction pooler refused a statement in it (nothing was applied).
    pending = await db.run_transaction(lambda: _apply_pending(db))
    for migration in pending:
        logger.info("Applied migration %04d %s", migration.version, migration.name)
    return pending


async def connect_and_migrate(db: Database, retry_seconds: float) -> list[Migration]:
    """Connect (retrying transient failures for `retry_seconds`), then apply pending migrations."""
    await db.connect_with_retry(retry_seconds)
    return await apply_migrations(db)


async def migrate(settings: Settings) -> list[Migration]:
    """Connect once (no retry), apply pending migrations, disconnect: `inv migrate` and the scripts."""
    db = Database(settings)
    try:
        return await connect_and_migrate(db, 0)
    finally:
        await db.disconnect()


async def current_version(db: Database) -> int:
    """The newest applied version, 0 when none (or the table is missing)."""
    exists = await db.fetch_val(_TABLE_EXISTS[db.dialect])
    if not exists:
        return 0
    return int(await db.fetch_val("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") or 0)


_TABLE_EXISTS = {
    "postgresql": "SELECT to_regclass('schema_migrations') IS NOT NULL",
    "sqlite": "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
}


async def _lock(db: Database) -> None:
    if db.dialect == "postgresql":
        await db.execute(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
        await db.execute(_CREATE_VERSIONS_TABLE)
    else:
        # A write as the first statement takes SQLite's RESERVED lock up front.
        await db.execute("UPDATE schema_migrations SET version = version WHERE 0 = 1")


async def _apply_pending(db: Database) -> list[Migration]:
    await _lock(db)
    applied = await _applied_versions(db)
    pending = [migration for migration in MIGRATIONS if migration.version not in applied]
    for migration in pending:
        await db.execute_script(migration.statements(db.dialect))
        await db.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (:version, :name)",
            {"version": migration.version, "name": migration.name},
        )
    return pending


async def _applied_versions(db: Database) -> set[int]:
    rows = await db.fetch_all("SELECT version FROM schema_migrations")
    return {int(row["version"]) for row in rows}
