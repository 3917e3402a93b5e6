"""Configuration: the only module that reads the environment and `.env`.

Values come from the process environment first, then from the `.env` file at
the project root (found from this file, not from the working directory, so
`inv` run from `docs/` reads the same file). Every problem is collected and
raised together in one `SettingsError`, each naming its setting and the fix.
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import SplitResult, urlsplit

from decouple import Config, RepositoryEmpty, RepositoryEnv

from backend.dburl import mask_url, parse_database_url
from backend.devsecret import development_secret
from backend.errors import DatabaseURLError, SettingsError, quoted
from backend.problems import Problem, setting_problem
from backend.secretstrength import weakness

ROOT: Final = Path(__file__).resolve().parent.parent
# TODO_ENV_FILE names another `.env` to read (tests, a second configuration);
# docs/configuration.md explains it. It cannot be set from `.env` itself.
ENV_FILE: Final = Path(os.environ.get("TODO_ENV_FILE") or ROOT / ".env").absolute()
DEV_SECRET_FILE: Final = ROOT / "var" / "dev-secret"
DEFAULT_DATABASE_URL: Final = "sqlite:///var/todo.sqlite3"

APP_ENVS: Final = ("development", "production")
LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")
MIN_SECRET_LENGTH: Final = 32
LOOPBACK_HOSTS: Final = ("127.0.0.1", "::1")
KEYGEN_FIX: Final = "generate one with `openssl rand -base64 32` and use it on both sides"

Lookup = Callable[[str], str | None]


class Secret:
    """A string that never shows itself in a repr, a log line or a message."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        # compare_digest refuses str with non-ASCII characters; bytes it takes.
        return isinstance(other, Secret) and secrets.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Typed, validated settings; built by `load_settings`, then passed down."""

    app_env: str = "development"
    database_url: str = DEFAULT_DATABASE_URL
    better_auth_url: str = "http://localhost:3000"
    jwks_url: str = "http://localhost:3000/api/auth/jwks"
    secret: Secret | None = None
    secret_is_generated: bool = False
    secret_weakness: str = ""  # why BETTER_AUTH_SECRET is guessable; production refuses it, development warns
    jwt_issuer: str = "http://localhost:3000"
    jwt_audience: str = "http://localhost:3000"
    hosts: tuple[str, ...] = LOOPBACK_HOSTS
    port: int = 8000
    workers: int = 1
    cors_origins: tuple[str, ...] = ("http://localhost:3000",)
    log_level: str = "info"
    db_pool_size: int = 10
    db_pool_timeout: float = 5.0
    db_connect_timeout: float = 15.0
    db_query_timeout: float = 10.0
    db_connect_retry_seconds: float = 60.0
    graceful_timeout: float = 10.0
    token_cache_size: int = 4096
    # The settings given a value (environment or `.env`): messages name what the user set.
    # Where a value came from is not part of the value: settings compare equal without it.
    explicit: frozenset[str] = dataclasses.field(default=frozenset(), compare=False)

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    def setting_for(self, name: str) -> str:
        """The setting to name in a fix about `name` (JWT_ISSUER, JWT_AUDIENCE, BETTER_AUTH_JWKS_URL).

        Itself when the user set it; otherwise BETTER_AUTH_URL, which it derives from.
        """
        return name if name in self.explicit else "BETTER_AUTH_URL"

    def __repr__(self) -> str:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("database_url", "better_auth_url", "jwks_url"):
            fields[name] = mask_url(fields[name])
        body = ", ".join(f"{name}={value!r}" for name, value in fields.items())
        return f"Settings({body})"


# Every setting the code reads, with the default `.env.example` documents;
# a test keeps the two in sync.
SETTING_NAMES: Final = (
    "APP_ENV",
    "DATABASE_URL",
    "BETTER_AUTH_URL",
    "BETTER_AUTH_JWKS_URL",
    "BETTER_AUTH_SECRET",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "HOST",
    "PORT",
    "WORKERS",
    "CORS_ORIGINS",
    "LOG_LEVEL",
    "DB_POOL_SIZE",
    "DB_POOL_TIMEOUT",
    "DB_CONNECT_TIMEOUT",
    "DB_QUERY_TIMEOUT",
    "DB_CONNECT_RETRY_SECONDS",
    "GRACEFUL_TIMEOUT",
    "TOKEN_CACHE_SIZE",
)


def read_env_file(path: Path = ENV_FILE) -> Lookup:
    """Return a lookup over the environment, then `path` (python-decouple).

    A missing file is fine; an unreadable one (or a directory) raises `SettingsError`.
    """
    repository: RepositoryEmpty
    try:
        if path.exists() and not path.is_file():
            raise IsADirectoryError(errno.EISDIR, "it is not a regular file (a directory?)")
        repository = RepositoryEnv(str(path)) if path.exists() else RepositoryEmpty()
    except (OSError, UnicodeDecodeError) as error:
        reason = "it is not valid UTF-8" if isinstance(error, UnicodeDecodeError) else _os_reason(error)
        raise SettingsError([_env_file_problem(path, reason)]) from None
    config = Config(repository)

    def lookup(name: str) -> str | None:
        value = config.get(name, default=None)
        return None if value is None else str(value)

    return lookup


def _env_file_problem(path: Path, reason: str) -> Problem:
    return setting_problem(
        ".env", f"{path} cannot be read: {reason}", "fix or delete the file; `inv env-check` shows the offending line"
    )


def _os_reason(error: OSError) -> str:
    return (error.strerror or str(error)).lower()


def load_settings(env_file: Path = ENV_FILE, *, create_dev_secret: bool = True) -> Settings:
    """Read, cast and validate every setting; raise one `SettingsError` listing all problems."""
    return build_settings(read_env_file(env_file), create_dev_secret=create_dev_secret)


def build_settings(lookup: Lookup, *, create_dev_secret: bool = False) -> Settings:
    """Build settings from `lookup` (a name -> raw value function); raise one `SettingsError` listing all problems."""
    settings, problems = read_settings(lookup)
    if problems:
        raise SettingsError(problems)
    # Only once everything else is valid: a failed start leaves no file behind.
    if settings.secret is None and settings.app_env == "development" and create_dev_secret:
        secret = Secret(development_secret(DEV_SECRET_FILE, MIN_SECRET_LENGTH))
        settings = dataclasses.replace(settings, secret=secret, secret_is_generated=True)
    return settings


def read_settings(lookup: Lookup) -> tuple[Settings, list[Problem]]:
    """Every setting read and judged once: the settings, each invalid one at its default, and the problems.

    `inv env-check` reports the problems and runs the checks whose settings are valid on the rest.
    """
    reader = _Reader(lookup)
    app_env = reader.choice("APP_ENV", "development", APP_ENVS)
    better_auth_url = reader.url("BETTER_AUTH_URL", "http://localhost:3000")
    jwks_url, issuer = _as_better_auth_derives(better_auth_url)
    values: dict[str, Any] = {
        "app_env": app_env,
        "database_url": reader.database_url("DATABASE_URL", DEFAULT_DATABASE_URL),
        "better_auth_url": better_auth_url,
        "jwks_url": reader.url("BETTER_AUTH_JWKS_URL", jwks_url),
        "jwt_issuer": reader.text("JWT_ISSUER", issuer),
        "jwt_audience": reader.text("JWT_AUDIENCE", issuer),
        "hosts": reader.hosts("HOST", "localhost"),
        "port": reader.integer("PORT", 8000, 1, 65535),
        "workers": reader.integer("WORKERS", 1, 1, 64),
        "cors_origins": reader.origins("CORS_ORIGINS", "http://localhost:3000"),
        "log_level": reader.choice("LOG_LEVEL", "info", LOG_LEVELS, lower=True),
        "db_pool_size": reader.integer("DB_POOL_SIZE", 10, 1, 1000),
        "db_pool_timeout": reader.seconds("DB_POOL_TIMEOUT", 5.0),
        "db_connect_timeout": reader.seconds("DB_CONNECT_TIMEOUT", 15.0),
        "db_query_timeout": reader.seconds("DB_QUERY_TIMEOUT", 10.0),
        "db_connect_retry_seconds": reader.seconds("DB_CONNECT_RETRY_SECONDS", 60.0, allow_zero=True),
        "graceful_timeout": reader.seconds("GRACEFUL_TIMEOUT", 10.0),
        "token_cache_size": reader.integer("TOKEN_CACHE_SIZE", 4096, 0, 1_000_000),
    }
    secret = reader.secret("BETTER_AUTH_SECRET")
    values["secret"] = secret
    values["secret_weakness"] = (weakness(secret.reveal()) or "") if secret is not None else ""
    values["explicit"] = frozenset(name for name in SETTING_NAMES if reader.raw(name) is not None)
    if app_env == "production":
        _check_production(reader, values)
    return Settings(**values), reader.problems


def _check_production(reader: _Reader, values: Mapping[str, Any]) -> None:
    # A setting that already failed fell back to its default; judging the default would mislead.
    database_ok = "DATABASE_URL" not in reader.failed
    if database_ok and parse_database_url(str(values["database_url"])).dialect == "sqlite":
        reader.reject(
            "DATABASE_URL",
            "is SQLite, which production refuses (one file, one machine, no backups)",
            "set DATABASE_URL to your PostgreSQL URL, e.g. the one Neon shows",
        )
    if values["secret_weakness"]:
        reader.reject(
            "BETTER_AUTH_SECRET",
            f"{values['secret_weakness']}, which production refuses: whoever guesses it can sign a token for any user",
            KEYGEN_FIX,
        )
    for name, key in (("BETTER_AUTH_URL", "better_auth_url"), ("BETTER_AUTH_JWKS_URL", "jwks_url")):
        url = urlsplit(str(values[key]))
        if url.scheme == "http" and not is_loopback_host(url.hostname or ""):
            reader.reject(
                name,
                f"is plain http to another host ({values[key]}): keys could be swapped in transit",
                "use the https:// address of your Better Auth server",
            )


def weak_secret_problem(weakness: str) -> Problem:
    """What development says about a weak BETTER_AUTH_SECRET (production refuses it)."""
    predicate = f"{weakness}: accepted in development, refused in production"
    return setting_problem("BETTER_AUTH_SECRET", predicate, KEYGEN_FIX, code="SECRET_WEAK")


def weak_secret_warning(weakness: str) -> str:
    """`weak_secret_problem` as the server logs it."""
    problem = weak_secret_problem(weakness)
    return f"{problem.message}; {problem.fix}"


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Reader:
    """Casts raw values, recording a `Problem` instead of raising."""

    def __init__(self, lookup: Lookup) -> None:
        self._lookup = lookup
        self.problems: list[Problem] = []

    @property
    def failed(self) -> set[str]:
        return {problem.setting for problem in self.problems}

    def reject(self, name: str, predicate: str, fix: str, *, code: str = "CONFIG_INVALID") -> None:
        self.problems.append(setting_problem(name, predicate, fix, code=code))

    def raw(self, name: str) -> str | None:
        value = self._lookup(name)
        return None if value is None or value.strip() == "" else value.strip()

    def text(self, name: str, default: str) -> str:
        return self.raw(name) or default

    def choice(self, name: str, default: str, choices: tuple[str, ...], *, lower: bool = False) -> str:
        value = self.raw(name) or default
        value = value.lower() if lower else value
        if value not in choices:
            self.reject(
                name,
                f"is {quoted(value)}, not one of {', '.join(choices)}",
                f"set {name} to one of {', '.join(choices)}",
            )
            return default
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            self.reject(name, f"is {quoted(value)}, not a whole number", f"set {name} to a number from {low} to {high}")
            return default
        if not low <= number <= high:
            self.reject(name, f"is {number}, outside {low}..{high}", f"set {name} to a number from {low} to {high}")
            return default
        return number

    def seconds(self, name: str, default: float, *, allow_zero: bool = False) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        low_ok = number >= 0 if allow_zero else number > 0
        if not low_ok or number > 3600:
            fix = f"set {name} to seconds, e.g. {default:g}"
            self.reject(name, f"is {quoted(value)}, not a number of seconds", fix)
            return default
        return number

    def url(self, name: str, default: str) -> str:
        value = (self.raw(name) or default).rstrip("/")
        parts = _split(value)
        if parts is None or parts.scheme not in ("http", "https") or parts.query or parts.fragment:
            self.reject(name, f"is {quoted(mask_url(value), 80)}, not an http(s) URL", f"set {name} like {default}")
            return default
        return value

    def database_url(self, name: str, default: str) -> str:
        value = self.raw(name) or default
        try:
            parse_database_url(value)
        except DatabaseURLError as error:
            self.reject(name, error.reason, error.fix, code=error.code)
            return default
        return value

    def secret(self, name: str) -> Secret | None:
        value = self.raw(name)
        if value is None:
            return None
        if len(value) < MIN_SECRET_LENGTH:
            self.reject(
                name,
                f"is {len(value)} characters; at least {MIN_SECRET_LENGTH} are required",
                KEYGEN_FIX,
            )
            return None
        return Secret(value)

    def hosts(self, name: str, default: str) -> tuple[str, ...]:
        hosts: list[str] = []
        for item in _items(self.raw(name) or default):
            host = item.strip("[]")
            if host == "localhost":
                hosts.extend(LOOPBACK_HOSTS)
            elif _is_ip(host):
                hosts.append(host)
            else:
                self.reject(
                    name, f"has {quoted(item)}, not an IP address", f"set {name} to e.g. 127.0.0.1,::1 or 0.0.0.0"
                )
        return tuple(dict.fromkeys(hosts)) or LOOPBACK_HOSTS

    def origins(self, name: str, default: str) -> tuple[str, ...]:
        origins: list[str] = []
        for item in _items(self.raw(name) or default):
            origin = item.rstrip("/")
            parts = _split(origin)
            if origin == "*":
                self.reject(
                    name, "is '*', which browsers refuse with credentials", f"list the frontend origins, e.g. {default}"
                )
            elif parts is None or parts.scheme not in ("http", "https") or origin != f"{parts.scheme}://{parts.netloc}":
                message = f"has {quoted(mask_url(origin), 80)}, not an origin"
                self.reject(name, message, "write origins as scheme://host[:port], comma-separated")
            else:
                origins.append(origin.lower())  # browsers send scheme and host in lower case
        return tuple(origins)


def _as_better_auth_derives(better_auth_url: str) -> tuple[str, str]:
    """The JWKS URL and the `iss`/`aud` Better Auth derives from the same BETTER_AUTH_URL.

    Better Auth (1.x) signs tokens with the URL's origin only, and takes a URL
    with a path as its auth base path (`http://localhost:3000/api/auth`, a
    common paste); without one the base path is `/api/auth`.
    """
    parts = _split(better_auth_url)
    assert parts is not None  # `_Reader.url` returns a valid URL (the default when the value is not)
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    default_port = {"http": 80, "https": 443}.get(parts.scheme.lower())
    port = "" if parts.port in (None, default_port) else f":{parts.port}"
    origin = f"{parts.scheme.lower()}://{host}{port}"
    base = better_auth_url if parts.path.strip("/") else f"{origin}/api/auth"
    return f"{base}/jwks", origin


def _items(value: str) -> list[str]:
    """The non-empty items of a comma-separated list: a trailing comma is no error."""
    return [item.strip() for item in value.split(",") if item.strip()]


def _split(url: str) -> SplitResult | None:
    """`url` split, or None when urlsplit would raise, it has no host or its port is not 1..65535."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # "Invalid IPv6 URL", a port that is no number or out of range
        return None
    if not parts.hostname or "@" in parts.netloc or port == 0:
        return None
    return parts


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
