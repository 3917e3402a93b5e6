"""DATABASE_URL as people paste it, turned into what `databases` + asyncpg need.

`databases` builds asyncpg's arguments from the URL's parts and ignores
`sslmode` (even `sslmode=disable` connects over TLS), and plain asyncpg sends
unknown options such as Neon's `channel_binding` to the server, which rejects
them. So the URL is parsed here: the scheme is normalised, the query becomes
asyncpg keyword arguments, and anything not understood is an error that names
the parameter rather than being silently dropped. sslmode, sslrootcert and
channel_binding are read by backend/dbtls.py.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Final
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlsplit

from backend.dbtls import TlsPolicy, parse_tls
from backend.errors import DatabaseURLError, quoted

_ROOT: Final = Path(__file__).resolve().parent.parent

_POSTGRES_SCHEMES: Final = {
    "postgres",
    "postgresql",
    "postgresql+asyncpg",
    "postgresql+psycopg",
    "postgresql+psycopg2",
}
_SQLITE_SCHEMES: Final = {"sqlite", "sqlite+aiosqlite"}
_PASSWORD_PARAMETER: Final = re.compile(r"(?i)([?&](?:ssl)?password=)[^&#]*")
_ENCODE_FIX: Final = (
    "percent-encode special characters in the user name and password (@ as %40, : as %3A, / as %2F, # as %23, ? as %3F)"
)


@dataclasses.dataclass(frozen=True)
class DatabaseTarget:
    """A normalised database location and the driver options it needs."""

    dialect: str  # "postgresql" or "sqlite"
    url: str  # for `databases`: normalised scheme, no query string
    options: dict[str, Any]  # asyncpg keyword arguments
    host: str = ""
    port: int = 5432
    database: str = ""
    user: str = ""
    sqlite_path: Path | None = None
    tls: TlsPolicy | None = None  # PostgreSQL only (backend/dbtls.py)
    # A transaction pooler recognised from the URL ("" when none is), and how statements
    # start out: named (kept by the server) or unnamed (backend/pgstatements.py).
    pooler: str = ""
    named_statements: bool = True
    statement_limit: int = 100

    def __repr__(self) -> str:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["url"] = mask_url(self.url)
        return f"DatabaseTarget({', '.join(f'{name}={value!r}' for name, value in fields.items())})"

    @property
    def pooled(self) -> bool:
        """True when the URL names a transaction pooler (host, port or `?pgbouncer=true`)."""
        return bool(self.pooler)

    @property
    def display(self) -> str:
        """Where it points, for messages: no password, ever."""
        if self.sqlite_path is not None:
            return f"SQLite file {self.sqlite_path}"
        return f"{self.user or '(default user)'}@{self.host}:{self.port}/{self.database}"


def parse_database_url(raw: str) -> DatabaseTarget:
    """Parse and normalise a database URL; raise `DatabaseURLError` naming what is wrong."""
    scheme, sep, _ = raw.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise DatabaseURLError(
            f"is {quoted(mask_url(raw), 60)}, not a URL",
            "write it as postgresql://user:password@host:5432/dbname or sqlite:///var/todo.sqlite3",
        )
    if scheme in _POSTGRES_SCHEMES:
        return _parse_postgres(raw)
    if scheme in _SQLITE_SCHEMES:
        return _parse_sqlite(raw)
    raise DatabaseURLError(
        f"uses the scheme {quoted(scheme)}, which this backend does not support",
        "use postgresql://... (PostgreSQL, Neon) or sqlite:///path (embedded)",
    )


def mask_url(raw: str) -> str:
    """The URL with its password replaced by `***`.

    Works on the text, not on a parse, so broken input is masked too; when in
    doubt it masks too much (a password with an unencoded `/` or `#` ends the
    authority early for a parser, but not for this).
    """
    text = _PASSWORD_PARAMETER.sub(r"\1***", raw)
    scheme, sep, rest = text.partition("://")
    if not sep:
        _, found, tail = text.rpartition("@")
        return f"***@{tail}" if found else text
    authority_end = min([i for i in map(rest.find, "/?#") if i >= 0] or [len(rest)])
    at = rest.rfind("@", 0, authority_end)
    if at < 0:
        at = rest.rfind("@")
    user, colon, _ = rest[: max(at, 0)].partition(":")
    return f"{scheme}://{user}:***@{rest[at + 1 :]}" if colon else text


def _parse_postgres(raw: str) -> DatabaseTarget:
    parts = _split_postgres(raw)
    port = _port(parts)
    database = parts.path.lstrip("/")
    if not database:
        raise DatabaseURLError(
            "names no database",
            "add the database name after the host, e.g. postgresql://user@host:5432/todo",
        )
    query = _query(parts.query)
    tls = parse_tls(query, parts.hostname or "")
    pooler, named, limit = _pooler(query, parts.hostname or "", port)
    options = _postgres_options(query, parts.hostname or "")
    ssl_option = tls.ssl_option()
    if ssl_option is not None:
        options["ssl"] = ssl_option
    host = str(options.get("host") or parts.hostname or "")
    if not host:
        raise DatabaseURLError("names no host", "write it as postgresql://user:password@host:5432/dbname")
    url = f"postgresql://{parts.netloc or 'localhost'}{parts.path}"
    return DatabaseTarget(
        "postgresql",
        url,
        options,
        host=host,
        port=port,
        database=unquote(database),
        user=unquote(parts.username or ""),
        tls=tls,
        pooler=pooler,
        named_statements=named,
        statement_limit=limit,
    )


def _split_postgres(raw: str) -> SplitResult:
    try:
        parts = urlsplit(raw)
    except ValueError:  # only "Invalid IPv6 URL": an unbalanced [ or ]
        raise DatabaseURLError("has an unbalanced '[' or ']'", f"write an IPv6 host as [::1]; {_ENCODE_FIX}") from None
    # An unencoded /, ? or # in the password moves the rest of the URL into the
    # path, query or fragment, and a digit-only password would pass for a port.
    if parts.fragment or "@" in parts.path or ("@" in parts.query and "@" not in parts.netloc):
        raise DatabaseURLError("has an '@' or '#' after the host, so it cannot be split into its parts", _ENCODE_FIX)
    return parts


def _port(parts: SplitResult) -> int:
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise DatabaseURLError(
            "has a port that is not a number from 1 to 65535",
            f"write the port as digits after the host, e.g. host:5432; {_ENCODE_FIX}",
        )
    return port or 5432


def _query(query: str) -> dict[str, str]:
    pairs = parse_qsl(query, keep_blank_values=True)
    seen: dict[str, str] = {}
    for key, value in pairs:
        if key in seen:
            raise DatabaseURLError(f"sets {quoted(key)} twice", f"keep one {key}= in the query string")
        seen[key] = value
    return seen


def _postgres_options(query: dict[str, str], hostname: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    server_settings: dict[str, str] = {}
    for key, value in query.items():
        if key == "connect_timeout":
            options["timeout"] = _number(key, value)
        elif key in ("application_name", "options"):
            server_settings[key] = value
        elif key in ("host", "target_session_attrs"):
            options[key] = value
        else:
            raise DatabaseURLError(
                f"has the query parameter {quoted(key)}, which this backend does not understand",
                "remove it (supported: sslmode, sslrootcert, channel_binding, connect_timeout, "
                "application_name, options, host, target_session_attrs, statement_cache_size, pgbouncer)",
            )
    if server_settings:
        options["server_settings"] = server_settings
    return options


# Ports transaction poolers listen on by default, and whose they are.
_POOLER_PORTS: Final = {
    6543: "port 6543: Supabase's transaction pooler",
    6432: "port 6432: PgBouncer's default",
    25061: "port 25061: DigitalOcean's connection pooler",
}


def _pooler(query: dict[str, str], hostname: str, port: int) -> tuple[str, bool, int]:
    """The transaction pooler the URL names ("" for none), whether statements start named, and how many to keep.

    Neon's pooler (PgBouncer with `max_prepared_statements`) keeps prepared
    statements across transactions: named, one round trip and the server's
    plan. The others may not (Supabase's Supavisor does not; a PgBouncer
    before 1.21 cannot): unnamed. A pooler no URL gives away is found at run
    time (backend/pgdriver.py).
    """
    hint = query.pop("pgbouncer", "").lower()
    if hint not in ("", "true", "false"):
        raise DatabaseURLError(f"has pgbouncer={quoted(hint)}", "use pgbouncer=true (or false)")
    limit = int(_number("statement_cache_size", query.pop("statement_cache_size", "100")))
    if hint == "false":
        return "", limit > 0, limit
    if hint == "true":
        return "?pgbouncer=true", False, limit
    if "-pooler." in hostname:
        return "Neon's -pooler host", limit > 0, limit
    if hostname.endswith(".pooler.supabase.com") and port != 5432:
        return "Supabase's pooler host", False, limit
    if port in _POOLER_PORTS:
        return _POOLER_PORTS[port], False, limit
    return "", limit > 0, limit


def _number(key: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1
    if number < 0:
        raise DatabaseURLError(f"has {key}={quoted(value)}, not a non-negative number", f"set {key} to a number")
    return number


def _parse_sqlite(raw: str) -> DatabaseTarget:
    _, _, rest = raw.partition("://")
    path_text, _, query = rest.partition("?")
    if query:
        raise DatabaseURLError("has a query string, which SQLite URLs here do not take", "remove everything after '?'")
    if not path_text.startswith("/"):
        raise DatabaseURLError(
            "is a SQLite URL without a path",
            "write sqlite:///var/todo.sqlite3 (relative to the project) or sqlite:////absolute/path",
        )
    path_text = unquote(path_text[1:])
    if path_text in ("", ":memory:") or path_text.startswith("file:"):
        raise DatabaseURLError(
            "is an in-memory SQLite database, which loses its tables between connections",
            "use a file, e.g. sqlite:///var/todo.sqlite3",
        )
    path = Path(path_text)
    if not path.is_absolute():
        path = _ROOT / path
    # `databases` unquotes the path: quote it, so a name with %, # or ? is the file on disk.
    url = f"sqlite:///{quote(str(path))}"
    return DatabaseTarget("sqlite", url, {}, database=path.name, sqlite_path=path)
