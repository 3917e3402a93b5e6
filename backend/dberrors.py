"""Why a database failed, and whether to try again.

`classify` names why connecting failed, with the fix: the server's startup
retries the transient and stops on the permanent, `inv env-check` prints one
line per failure. Every code is in docs/troubleshooting.md.

`Failure` is what a statement's error means to backend/database.py's retry
rules; each driver (backend/pgdriver.py, backend/sqlitedriver.py) maps its
own errors to one.
"""

from __future__ import annotations

import dataclasses
import socket
import sqlite3
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from backend.dbtls import TlsPolicy, certificate_failure, tls_unavailable_fix
from backend.dburl import DatabaseTarget
from backend.errors import DatabaseUnreachableError

if TYPE_CHECKING:
    import asyncpg

# Kinds of statement failure.
LOST: Final = "lost"  # the connection or the database went away (or SQLite's file was busy)
SLOW: Final = "slow"  # a limit ran out: a statement took too long, or no connection came free
POOLER: Final = "pooler"  # a transaction pooler refused a prepared statement by name
STALE_PLAN: Final = "stale_plan"  # a kept statement no longer fits the table it reads

_DIAGNOSE_FIX: Final = "run `inv env-check` for a full diagnosis"

Call = Literal["fetch", "fetchrow", "fetchval", "execute"]


@dataclasses.dataclass(frozen=True)
class Failure:
    """A statement failed for a reason outside the query itself."""

    kind: str
    never_ran: bool  # provably not executed: nothing to apply twice
    busy: bool = False  # every connection stayed busy (a kind of SLOW)

    def retryable(self, read: bool) -> bool:
        """Whether running the statement again can neither apply a change twice nor double a wait."""
        if self.kind == SLOW:
            return False
        return read or self.never_ran


def classify(error: BaseException, target: DatabaseTarget) -> DatabaseUnreachableError:
    """Turn a driver or socket error into a named `DatabaseUnreachableError`."""
    if isinstance(error, DatabaseUnreachableError):
        return error
    where = f"{target.host}:{target.port}"
    if isinstance(error, sqlite3.Error):
        return sqlite_unusable(target.sqlite_path, str(error), transient=sqlite_busy(error))
    # asyncpg is imported in the functions that need it: this module is loaded before the
    # port answers, asyncpg only after (backend/preload.py), or here at the first error.
    import asyncpg

    if isinstance(error, asyncpg.PostgresError):
        return _refused_by_server(error, target, where) or _rejected_by_server(error, target, where)
    return _tls_failure(error, target, where) or _network_failure(error, target, where)


def sqlite_busy(error: sqlite3.Error) -> bool:
    """SQLite's file is locked by another connection's write: the one judgement of "busy"."""
    return "locked" in str(error)


def sqlite_unusable(path: Path | None, reason: str, *, transient: bool = False) -> DatabaseUnreachableError:
    return DatabaseUnreachableError(
        "DB_SQLITE_UNUSABLE",
        f"cannot use the SQLite file {path}: {reason}",
        "check the folder exists and is writable, or set DATABASE_URL to another path",
        transient=transient,
    )


def _tls_failure(error: BaseException, target: DatabaseTarget, where: str) -> DatabaseUnreachableError | None:
    import asyncpg

    if isinstance(error, asyncpg.ClientConfigurationError) and "root certificate" in str(error):
        return DatabaseUnreachableError(
            "DB_TLS_ROOT_CERT_MISSING",
            f"sslmode=verify-ca/verify-full needs a CA certificate to check {where}, and none was found "
            f"({_first_line(error)})",
            "add sslrootcert=system to DATABASE_URL to trust the system's CAs (enough for Neon), "
            "or point sslrootcert at your CA file",
        )
    if isinstance(error, ssl.SSLCertVerificationError):
        return certificate_failure(error, target.tls or TlsPolicy(), target.host, target.port)
    if isinstance(error, ConnectionError) and "rejected SSL upgrade" in str(error):
        return DatabaseUnreachableError(
            "DB_TLS_UNAVAILABLE",
            f"{where} does not offer TLS but DATABASE_URL requires it",
            tls_unavailable_fix(target.tls or TlsPolicy()),
        )
    return None


def _network_failure(error: BaseException, target: DatabaseTarget, where: str) -> DatabaseUnreachableError:
    if isinstance(error, socket.gaierror):
        return _lookup_failure(error, target.host)
    if isinstance(error, ConnectionRefusedError):
        return DatabaseUnreachableError(
            "DB_CONNECTION_REFUSED",
            f"nothing accepts connections on {where}",
            "start PostgreSQL, or fix the host and port in DATABASE_URL",
            transient=True,
        )
    if isinstance(error, TimeoutError):
        return DatabaseUnreachableError(
            "DB_TIMEOUT",
            f"{where} did not answer in time",
            "check the host, port and firewall; a napping Neon database wakes within seconds",
            transient=True,
        )
    if isinstance(error, OSError):
        return DatabaseUnreachableError(
            "DB_UNREACHABLE",
            f"cannot reach {where}: {error.strerror or error}",
            "check the network and the host in DATABASE_URL",
            transient=True,
        )
    return DatabaseUnreachableError(
        "DB_CONNECT_FAILED",
        f"connecting to {where} failed: {type(error).__name__}: {_first_line(error)}",
        _DIAGNOSE_FIX,
    )


def _lookup_failure(error: socket.gaierror, host: str) -> DatabaseUnreachableError:
    if error.errno == socket.EAI_AGAIN:
        return DatabaseUnreachableError(
            "DB_DNS_TEMPORARY",
            f"looking up {host!r} failed for now ({error.strerror})",
            "check the network or DNS; the server retries by itself",
            transient=True,
        )
    return DatabaseUnreachableError(
        "DB_HOST_NOT_FOUND",
        f"the database host {host!r} does not exist (DNS: {error.strerror})",
        "fix the host in DATABASE_URL (copy it again from your provider's dashboard)",
    )


def _refused_by_server(
    error: asyncpg.PostgresError, target: DatabaseTarget, where: str
) -> DatabaseUnreachableError | None:
    """The server's answers that have an exception class of their own in asyncpg."""
    import asyncpg

    if isinstance(error, asyncpg.InvalidPasswordError):
        return DatabaseUnreachableError(
            "DB_AUTH_FAILED",
            f"password authentication failed for user {target.user!r} on {where}",
            "fix the password in DATABASE_URL (Neon: reset it in the dashboard and copy the new URL)",
        )
    if isinstance(error, asyncpg.InvalidCatalogNameError):
        return DatabaseUnreachableError(
            "DB_NOT_FOUND",
            f"database {target.database!r} does not exist on {where}",
            f"create it with `createdb {target.database}` or fix the database name in DATABASE_URL",
        )
    if isinstance(error, asyncpg.CannotConnectNowError):
        return DatabaseUnreachableError(
            "DB_STARTING",
            f"{where} is starting up or shutting down ({error})",
            "wait; the server retries by itself",
            transient=True,
        )
    if isinstance(error, asyncpg.TooManyConnectionsError):
        return DatabaseUnreachableError(
            "DB_TOO_MANY_CONNECTIONS",
            f"{where} has no free connection slots",
            "lower DB_POOL_SIZE or WORKERS, or use Neon's pooled (-pooler) host",
            transient=True,
        )
    return None


def _rejected_by_server(error: asyncpg.PostgresError, target: DatabaseTarget, where: str) -> DatabaseUnreachableError:
    """The server's answers told apart by their text: pg_hba.conf and missing roles share a SQLSTATE."""
    import asyncpg

    message = str(error)
    if "no pg_hba.conf entry" in message and "no encryption" in message:
        return DatabaseUnreachableError(
            "DB_TLS_REQUIRED", f"{where} accepts only TLS connections", "add ?sslmode=require to DATABASE_URL"
        )
    if "no pg_hba.conf entry" in message or "pg_hba.conf rejects connection" in message:
        return DatabaseUnreachableError(
            "DB_ACCESS_DENIED",
            f"{where} refuses this client ({message})",
            "allow this host and user in pg_hba.conf, or use the URL your provider gives",
        )
    if isinstance(error, asyncpg.InvalidAuthorizationSpecificationError) and "does not exist" in message:
        return DatabaseUnreachableError(
            "DB_ROLE_NOT_FOUND",
            f"role {target.user!r} does not exist on {where}",
            f"create it with `createuser --pwprompt {target.user}` or fix the user in DATABASE_URL",
        )
    return DatabaseUnreachableError(
        "DB_CONNECT_FAILED", f"{where} refused the connection: {_first_line(error)}", _DIAGNOSE_FIX
    )


def _first_line(error: BaseException) -> str:
    """The error's message without the HINT and DETAIL lines drivers append: results are one line."""
    return str(error).strip().split("\n", 1)[0]
