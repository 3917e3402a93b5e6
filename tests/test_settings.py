"""Settings: defaults, `.env` and the environment, every problem at once, secrets never shown."""

from __future__ import annotations

import inspect
import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from backend import settings as settings_module
from backend.dburl import parse_database_url
from backend.errors import SettingsError
from backend.problems import Problem, setting_problem
from backend.settings import ROOT, SETTING_NAMES, Secret, Settings, build_settings, load_settings

SECRET = "s3cret-" + "k" * 33  # 40 characters
PASSWORD = "hunter2"
POSTGRES_URL = f"postgresql://todo:{PASSWORD}@db.example.com/todo"
PRODUCTION = {"APP_ENV": "production", "DATABASE_URL": POSTGRES_URL, "BETTER_AUTH_URL": "https://auth.example.com"}
ENV_FILE_FIX = "fix or delete the file; `inv env-check` shows the offending line"


def lookup(**values: str) -> Callable[[str], str | None]:
    return values.get


def settings_error(values: Callable[[str], str | None]) -> SettingsError | None:
    """The error `build_settings` raises, or None; any other exception escapes and fails the test."""
    try:
        build_settings(values)
    except SettingsError as error:
        return error
    return None


def problems_of(**values: str) -> list[Problem]:
    with pytest.raises(SettingsError) as caught:
        build_settings(lookup(**values))
    return caught.value.problems


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's exported settings must not leak into these tests."""
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def dev_secret_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the checkout's var/dev-secret out of reach: a test gets its own."""
    path = tmp_path / "var" / "dev-secret"
    monkeypatch.setattr(settings_module, "DEV_SECRET_FILE", path)
    return path


# Defaults


def test_defaults_without_env_file_or_environment() -> None:
    settings = build_settings(lambda name: None)

    assert settings.app_env == "development"
    assert settings.is_production is False
    assert settings.database_url == "sqlite:///var/todo.sqlite3"
    assert parse_database_url(settings.database_url).sqlite_path == ROOT / "var" / "todo.sqlite3"
    assert settings.better_auth_url == "http://localhost:3000"
    assert settings.jwks_url == "http://localhost:3000/api/auth/jwks"
    assert settings.jwt_issuer == "http://localhost:3000"
    assert settings.jwt_audience == "http://localhost:3000"
    assert settings.hosts == ("127.0.0.1", "::1")
    assert settings.port == 8000
    assert settings.workers == 1
    assert settings.cors_origins == ("http://localhost:3000",)
    assert settings.log_level == "info"
    assert settings.db_pool_size == 10
    assert settings.db_pool_timeout == 5.0
    assert settings.db_connect_timeout == 15.0
    assert settings.db_query_timeout == 10.0
    assert settings.db_connect_retry_seconds == 60.0
    assert settings.secret is None
    assert settings.secret_is_generated is False


def test_blank_values_mean_the_default() -> None:
    settings = build_settings(lookup(PORT="", WORKERS="   ", BETTER_AUTH_URL="", HOST=" ", CORS_ORIGINS=""))

    assert settings.port == 8000
    assert settings.workers == 1
    assert settings.better_auth_url == "http://localhost:3000"
    assert settings.hosts == ("127.0.0.1", "::1")
    assert settings.cors_origins == ("http://localhost:3000",)


def test_jwks_url_issuer_and_audience_follow_better_auth_url() -> None:
    settings = build_settings(lookup(BETTER_AUTH_URL="https://auth.example.com"))

    assert settings.better_auth_url == "https://auth.example.com"
    assert settings.jwks_url == "https://auth.example.com/api/auth/jwks"
    assert settings.jwt_issuer == "https://auth.example.com"
    assert settings.jwt_audience == "https://auth.example.com"


def test_trailing_slash_on_better_auth_url_is_stripped() -> None:
    settings = build_settings(lookup(BETTER_AUTH_URL="https://auth.example.com//"))

    assert settings.better_auth_url == "https://auth.example.com"
    assert settings.jwks_url == "https://auth.example.com/api/auth/jwks"


@pytest.mark.parametrize(
    ("better_auth_url", "jwks_url", "issuer"),
    [
        # A pasted auth endpoint: Better Auth takes the path as its base path and signs with the origin.
        ("http://localhost:3000/api/auth", "http://localhost:3000/api/auth/jwks", "http://localhost:3000"),
        ("https://auth.example.com/app/", "https://auth.example.com/app/jwks", "https://auth.example.com"),
        # The origin as a browser (and Better Auth's `new URL().origin`) writes it.
        ("HTTPS://Auth.Example.com:443", "https://auth.example.com/api/auth/jwks", "https://auth.example.com"),
        ("http://[::1]:3000", "http://[::1]:3000/api/auth/jwks", "http://[::1]:3000"),
    ],
)
def test_jwks_url_and_issuer_are_derived_as_better_auth_derives_them(
    better_auth_url: str, jwks_url: str, issuer: str
) -> None:
    settings = build_settings(lookup(BETTER_AUTH_URL=better_auth_url))

    assert (settings.jwks_url, settings.jwt_issuer, settings.jwt_audience) == (jwks_url, issuer, issuer)


def test_explicit_jwks_url_issuer_and_audience_win_over_better_auth_url() -> None:
    settings = build_settings(
        lookup(
            BETTER_AUTH_URL="https://auth.example.com",
            BETTER_AUTH_JWKS_URL="https://keys.example.com/jwks/",
            JWT_ISSUER="https://issuer.example.com",
            JWT_AUDIENCE="todo-api",
        )
    )

    assert settings.jwks_url == "https://keys.example.com/jwks"
    assert settings.jwt_issuer == "https://issuer.example.com"
    assert settings.jwt_audience == "todo-api"


def test_values_are_cast_and_trimmed() -> None:
    settings = build_settings(
        lookup(
            PORT=" 8080 ",
            WORKERS="4",
            LOG_LEVEL="DEBUG",
            DB_POOL_SIZE="25",
            DB_CONNECT_TIMEOUT="2.5",
            DB_QUERY_TIMEOUT="30",
            DB_CONNECT_RETRY_SECONDS="0",
            CORS_ORIGINS="http://localhost:3000/, https://app.example.com,",
        )
    )

    assert settings.port == 8080
    assert settings.workers == 4
    assert settings.log_level == "debug"
    assert settings.db_pool_size == 25
    assert settings.db_connect_timeout == 2.5
    assert settings.db_query_timeout == 30.0
    assert settings.db_connect_retry_seconds == 0.0
    assert settings.cors_origins == ("http://localhost:3000", "https://app.example.com")


@pytest.mark.parametrize(
    ("raw", "hosts"),
    [
        ("localhost", ("127.0.0.1", "::1")),
        ("0.0.0.0", ("0.0.0.0",)),  # noqa: S104 - a container listens on every interface
        ("::", ("::",)),
        ("[::1]", ("::1",)),
        ("localhost, 10.0.0.5, 127.0.0.1", ("127.0.0.1", "::1", "10.0.0.5")),
        ("127.0.0.1,", ("127.0.0.1",)),
    ],
)
def test_host_is_a_list_of_addresses_with_localhost_meaning_both_loopbacks(raw: str, hosts: tuple[str, ...]) -> None:
    assert build_settings(lookup(HOST=raw)).hosts == hosts


# .env and the environment


def write_env(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_load_settings_reads_the_env_file(tmp_path: Path) -> None:
    env_file = write_env(
        tmp_path / ".env",
        f'# a comment\n\nPORT=9000\nDATABASE_URL="{POSTGRES_URL}"\nLOG_LEVEL = warning\nBETTER_AUTH_SECRET={SECRET}\n',
    )

    settings = load_settings(env_file)

    assert settings.port == 9000
    assert settings.database_url == POSTGRES_URL
    assert settings.log_level == "warning"
    assert settings.secret == Secret(SECRET)
    assert settings.secret_is_generated is False


def test_env_file_value_is_shadowed_by_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = write_env(tmp_path / ".env", "PORT=9000\nWORKERS=2\n")
    monkeypatch.setenv("PORT", "9001")

    settings = load_settings(env_file, create_dev_secret=False)

    assert settings.port == 9001
    assert settings.workers == 2


def test_env_file_is_found_by_path_whatever_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = write_env(tmp_path / "project" / ".env", "PORT=9000\n")
    write_env(tmp_path / "elsewhere" / ".env", "PORT=1111\n")
    monkeypatch.chdir(tmp_path / "elsewhere")

    assert load_settings(env_file, create_dev_secret=False).port == 9000


def _env_file_seen_from(cwd: Path, **environment: str) -> Path:
    """ENV_FILE as a fresh interpreter computes it at import, from `cwd`."""
    env = {key: value for key, value in os.environ.items() if key != "TODO_ENV_FILE"} | environment
    code = "from backend.settings import ENV_FILE; print(ENV_FILE)"
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run([sys.executable, "-c", code], check=True, cwd=cwd, env=env, capture_output=True, text=True)
    return Path(result.stdout.strip())


def test_default_env_file_is_the_one_at_the_project_root(tmp_path: Path) -> None:
    assert _env_file_seen_from(tmp_path) == ROOT / ".env"
    assert inspect.signature(load_settings).parameters["env_file"].default == settings_module.ENV_FILE


def test_todo_env_file_names_another_env_file(tmp_path: Path) -> None:
    assert _env_file_seen_from(tmp_path, TODO_ENV_FILE="other.env") == tmp_path / "other.env"


def test_missing_env_file_means_defaults(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "absent.env", create_dev_secret=False)

    assert settings.port == 8000
    assert settings.database_url == "sqlite:///var/todo.sqlite3"


def test_env_file_with_invalid_utf8_is_a_settings_error(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_bytes(b"PORT=8000\nBETTER_AUTH_SECRET=caf\xe9-\xff\xfe\n")

    with pytest.raises(SettingsError) as caught:
        load_settings(env_file)

    assert caught.value.problems == [
        setting_problem(".env", f"{env_file} cannot be read: it is not valid UTF-8", ENV_FILE_FIX)
    ]
    assert caught.value.code == "CONFIG_INVALID"


def test_env_file_that_is_a_directory_is_a_settings_error(tmp_path: Path) -> None:
    env_dir = tmp_path / ".env"
    env_dir.mkdir()

    with pytest.raises(SettingsError) as caught:
        load_settings(env_dir)

    assert caught.value.problems == [
        setting_problem(".env", f"{env_dir} cannot be read: it is not a regular file (a directory?)", ENV_FILE_FIX)
    ]


# Every problem at once


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        build_settings(
            lookup(
                PORT="abc",
                WORKERS="0",
                LOG_LEVEL="loud",
                BETTER_AUTH_SECRET="short",
                APP_ENV="staging",
                CORS_ORIGINS="*",
                HOST="not-an-ip",
                DATABASE_URL="mysql://x",
            ),
            create_dev_secret=True,
        )

    error = caught.value
    assert error.problems == [
        setting_problem(
            "APP_ENV",
            "is 'staging', not one of development, production",
            "set APP_ENV to one of development, production",
        ),
        setting_problem(
            "DATABASE_URL",
            "uses the scheme 'mysql', which this backend does not support",
            "use postgresql://... (PostgreSQL, Neon) or sqlite:///path (embedded)",
            code="DATABASE_URL_INVALID",
        ),
        setting_problem("HOST", "has 'not-an-ip', not an IP address", "set HOST to e.g. 127.0.0.1,::1 or 0.0.0.0"),
        setting_problem("PORT", "is 'abc', not a whole number", "set PORT to a number from 1 to 65535"),
        setting_problem("WORKERS", "is 0, outside 1..64", "set WORKERS to a number from 1 to 64"),
        setting_problem(
            "CORS_ORIGINS",
            "is '*', which browsers refuse with credentials",
            "list the frontend origins, e.g. http://localhost:3000",
        ),
        setting_problem(
            "LOG_LEVEL",
            "is 'loud', not one of debug, info, warning, error, critical",
            "set LOG_LEVEL to one of debug, info, warning, error, critical",
        ),
        setting_problem(
            "BETTER_AUTH_SECRET",
            "is 5 characters; at least 32 are required",
            "generate one with `openssl rand -base64 32` and use it on both sides",
        ),
    ]
    message = str(error)
    assert message.startswith("8 settings invalid:\n  - APP_ENV is 'staging', not one of development, production: ")
    for name in (
        "APP_ENV",
        "DATABASE_URL",
        "HOST",
        "PORT",
        "WORKERS",
        "CORS_ORIGINS",
        "LOG_LEVEL",
        "BETTER_AUTH_SECRET",
    ):
        assert f"  - {name} " in message
    assert "short" not in message


def test_one_problem_is_worded_in_the_singular() -> None:
    with pytest.raises(SettingsError) as caught:
        build_settings(lookup(PORT="http"))

    assert str(caught.value) == (
        "1 setting invalid:\n  - PORT is 'http', not a whole number: set PORT to a number from 1 to 65535"
    )


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("PORT", "abc", "is 'abc', not a whole number"),
        ("PORT", "80.5", "is '80.5', not a whole number"),
        ("PORT", "0", "is 0, outside 1..65535"),
        ("PORT", "65536", "is 65536, outside 1..65535"),
        ("PORT", "9" * 5000, f"is '{'9' * 40}...', not a whole number"),
        ("WORKERS", "65", "is 65, outside 1..64"),
        ("WORKERS", "-1", "is -1, outside 1..64"),
        ("DB_POOL_SIZE", "0", "is 0, outside 1..1000"),
        ("DB_CONNECT_TIMEOUT", "0", "is '0', not a number of seconds"),
        ("DB_CONNECT_TIMEOUT", "5s", "is '5s', not a number of seconds"),
        ("DB_QUERY_TIMEOUT", "nan", "is 'nan', not a number of seconds"),
        ("DB_QUERY_TIMEOUT", "inf", "is 'inf', not a number of seconds"),
        ("DB_CONNECT_RETRY_SECONDS", "-1", "is '-1', not a number of seconds"),
        ("DB_CONNECT_RETRY_SECONDS", "3601", "is '3601', not a number of seconds"),
        ("APP_ENV", "prod", "is 'prod', not one of development, production"),
        ("LOG_LEVEL", "verbose", "is 'verbose', not one of debug, info, warning, error, critical"),
        ("HOST", "example.com", "has 'example.com', not an IP address"),
        ("HOST", "127.0.0.1:8000", "has '127.0.0.1:8000', not an IP address"),
        ("BETTER_AUTH_URL", "ftp://auth.example.com", "is 'ftp://auth.example.com', not an http(s) URL"),
        ("BETTER_AUTH_URL", "localhost:3000", "is 'localhost:3000', not an http(s) URL"),
        ("BETTER_AUTH_URL", "http://[::1", "is 'http://[::1', not an http(s) URL"),
        ("BETTER_AUTH_URL", "http://localhost:abc", "is 'http://localhost:abc', not an http(s) URL"),
        ("BETTER_AUTH_URL", "http://localhost:0", "is 'http://localhost:0', not an http(s) URL"),
        ("BETTER_AUTH_URL", "https://auth.example.com?x=1", "is 'https://auth.example.com?x=1', not an http(s) URL"),
        ("BETTER_AUTH_JWKS_URL", "/api/auth/jwks", "is '/api/auth/jwks', not an http(s) URL"),
        ("CORS_ORIGINS", "localhost:3000", "has 'localhost:3000', not an origin"),
        ("CORS_ORIGINS", "http://localhost:3000/app", "has 'http://localhost:3000/app', not an origin"),
        ("CORS_ORIGINS", "https://app.example.com?x=1", "has 'https://app.example.com?x=1', not an origin"),
        ("CORS_ORIGINS", "http://[::1", "has 'http://[::1', not an origin"),
        ("CORS_ORIGINS", "https://app.example.com:99999", "has 'https://app.example.com:99999', not an origin"),
        ("DATABASE_URL", "postgresql://u@h", "names no database"),
        (
            "DATABASE_URL",
            "sqlite:///:memory:",
            "is an in-memory SQLite database, which loses its tables between connections",
        ),
    ],
)
def test_bad_value_is_reported_with_its_setting(name: str, raw: str, message: str) -> None:
    (problem,) = problems_of(**{name: raw})

    assert problem.setting == name
    assert problem.message == f"{name} {message}"
    assert problem.fix


GARBAGE = [
    "abc",
    "-1",
    "0",
    "1.5",
    "1e400",
    "nan",
    "-inf",
    "0x1F",
    "1_000",
    "9" * 5000,
    "\x00",
    "\u0663",  # ARABIC-INDIC DIGIT THREE: int() takes it
    "\U0001f4a5",
    "*",
    ",",
    ",,,",
    "[]",
    "[::1",
    "://",
    "http://",
    "http://[::1",
    "http://host:port",
    "http://h:99999",
    "https://u:p@h",
    "postgresql://u:p@/",
    "postgresql://u:p@h:x/db",
    "sqlite://",
    "true",
    "None",
]


@pytest.mark.parametrize("garbage", GARBAGE)
@pytest.mark.parametrize("name", SETTING_NAMES)
def test_garbage_is_accepted_or_refused_naming_its_setting_never_a_bare_exception(name: str, garbage: str) -> None:
    error = settings_error(lookup(**{name: garbage}))

    if error is not None:
        assert {problem.setting for problem in error.problems} == {name}
        assert f"  - {name} " in str(error)


@pytest.mark.parametrize("name", SETTING_NAMES)
def test_a_huge_bad_value_is_quoted_shortened_in_its_message(name: str) -> None:
    error = settings_error(lookup(**{name: "x" * 10_000_000}))

    if error is not None:
        assert len(str(error)) < 1000
        assert re.search(r"'x{40,80}\.\.\.'", str(error))


# Secrets


def test_secret_repr_and_str_are_masked() -> None:
    secret = Secret(SECRET)

    assert repr(secret) == "Secret('**********')"
    assert str(secret) == "Secret('**********')"
    assert f"{secret}" == "Secret('**********')"
    assert secret.reveal() == SECRET
    assert len(secret) == 40


def test_secrets_compare_by_value_even_when_not_ascii() -> None:
    assert Secret(SECRET) == Secret(SECRET)
    assert Secret("é" * 40) == Secret("é" * 40)
    assert Secret("é" * 40) != Secret("e" * 40)
    assert Secret(SECRET) != SECRET
    assert hash(Secret(SECRET)) == hash(Secret(SECRET))


def test_settings_repr_never_shows_the_secret_or_the_database_password() -> None:
    settings = build_settings(lookup(DATABASE_URL=POSTGRES_URL, BETTER_AUTH_SECRET=SECRET))

    text = repr(settings)
    assert SECRET not in text
    assert PASSWORD not in text
    assert "database_url='postgresql://todo:***@db.example.com/todo'" in text
    assert "secret=Secret('**********')" in text
    assert str(settings) == text
    assert settings.database_url == POSTGRES_URL  # the value itself is intact


def test_settings_error_never_shows_a_secret_or_a_password() -> None:
    problems = problems_of(
        DATABASE_URL=f"postgresql://todo:{PASSWORD}@db.example.com:notaport/todo",
        BETTER_AUTH_URL=f"postgresql://todo:{PASSWORD}@db.example.com/todo",  # pasted into the wrong setting
        BETTER_AUTH_JWKS_URL=f"postgresql:todo:{PASSWORD}@db.example.com/todo",
        CORS_ORIGINS=f"https://todo:{PASSWORD}@app.example.com",
        BETTER_AUTH_SECRET=PASSWORD + "-too-short",
    )

    assert [problem.setting for problem in problems] == [
        "BETTER_AUTH_URL",
        "DATABASE_URL",
        "BETTER_AUTH_JWKS_URL",
        "CORS_ORIGINS",
        "BETTER_AUTH_SECRET",
    ]
    text = str(SettingsError(problems)) + repr(problems)
    assert PASSWORD not in text
    assert problems[0].message == "BETTER_AUTH_URL is 'postgresql://todo:***@db.example.com/todo', not an http(s) URL"


def test_short_secret_error_tells_the_length_not_the_secret() -> None:
    (problem,) = problems_of(BETTER_AUTH_SECRET="correct-horse-battery")

    assert problem == setting_problem(
        "BETTER_AUTH_SECRET",
        "is 21 characters; at least 32 are required",
        "generate one with `openssl rand -base64 32` and use it on both sides",
    )
    assert "horse" not in str(SettingsError([problem]))


# Production


@pytest.mark.parametrize(
    "database_url", ["", "sqlite:///var/todo.sqlite3", "SQLite:////srv/todo.db", "sqlite+aiosqlite:///var/x.db"]
)
def test_production_refuses_sqlite(database_url: str) -> None:
    problems = problems_of(**{**PRODUCTION, "DATABASE_URL": database_url})

    assert problems == [
        setting_problem(
            "DATABASE_URL",
            "is SQLite, which production refuses (one file, one machine, no backups)",
            "set DATABASE_URL to your PostgreSQL URL, e.g. the one Neon shows",
        )
    ]


def test_production_reports_an_invalid_database_url_once() -> None:
    problems = problems_of(**{**PRODUCTION, "DATABASE_URL": "mysql://x"})

    assert [(problem.setting, problem.code, problem.message) for problem in problems] == [
        (
            "DATABASE_URL",
            "DATABASE_URL_INVALID",
            "DATABASE_URL uses the scheme 'mysql', which this backend does not support",
        )
    ]


def test_production_refuses_plain_http_auth_url_to_another_host() -> None:
    problems = problems_of(**{**PRODUCTION, "BETTER_AUTH_URL": "http://auth.example.com"})

    fix = "use the https:// address of your Better Auth server"
    assert problems == [
        setting_problem(
            "BETTER_AUTH_URL",
            "is plain http to another host (http://auth.example.com): keys could be swapped in transit",
            fix,
        ),
        setting_problem(
            "BETTER_AUTH_JWKS_URL",
            "is plain http to another host (http://auth.example.com/api/auth/jwks): keys could be swapped in transit",
            fix,
        ),
    ]


def test_production_refuses_plain_http_jwks_url_to_another_host() -> None:
    problems = problems_of(**{**PRODUCTION, "BETTER_AUTH_JWKS_URL": "http://10.0.0.5:3000/api/auth/jwks"})

    assert [problem.setting for problem in problems] == ["BETTER_AUTH_JWKS_URL"]


@pytest.mark.parametrize(
    "auth_url",
    ["https://auth.example.com", "http://localhost:3000", "http://127.0.0.1:3000", "http://[::1]:3000"],
)
def test_production_accepts_https_and_loopback_http(auth_url: str) -> None:
    settings = build_settings(lookup(**{**PRODUCTION, "BETTER_AUTH_URL": auth_url}), create_dev_secret=True)

    assert settings.is_production is True
    assert settings.better_auth_url == auth_url
    assert settings.jwks_url == f"{auth_url}/api/auth/jwks"


def test_production_never_generates_a_development_secret(dev_secret_file: Path) -> None:
    settings = build_settings(lookup(**PRODUCTION), create_dev_secret=True)

    assert settings.secret is None
    assert settings.secret_is_generated is False
    assert not dev_secret_file.exists()


def test_development_accepts_sqlite_and_plain_http_to_another_host() -> None:
    settings = build_settings(lookup(BETTER_AUTH_URL="http://auth.internal:3000"))

    assert settings.jwks_url == "http://auth.internal:3000/api/auth/jwks"
    assert settings.database_url.startswith("sqlite")


# The development secret


def test_development_secret_is_created_private_and_reused(dev_secret_file: Path) -> None:
    first = build_settings(lambda name: None, create_dev_secret=True)

    assert first.secret is not None
    assert first.secret_is_generated is True
    assert len(first.secret) >= 32
    assert dev_secret_file.read_text(encoding="ascii") == first.secret.reveal() + "\n"
    assert stat.S_IMODE(dev_secret_file.stat().st_mode) == 0o600
    assert sorted(path.name for path in dev_secret_file.parent.iterdir()) == ["dev-secret"]

    second = build_settings(lambda name: None, create_dev_secret=True)

    assert second.secret == first.secret
    assert second.secret_is_generated is True


def test_load_settings_creates_the_development_secret_by_default(tmp_path: Path, dev_secret_file: Path) -> None:
    settings = load_settings(tmp_path / "absent.env")

    assert settings.secret_is_generated is True
    assert settings.secret == Secret(dev_secret_file.read_text(encoding="ascii").strip())


def test_configured_secret_wins_over_the_development_secret(dev_secret_file: Path) -> None:
    settings = build_settings(lookup(BETTER_AUTH_SECRET=SECRET), create_dev_secret=True)

    assert settings.secret == Secret(SECRET)
    assert settings.secret_is_generated is False
    assert not dev_secret_file.exists()


def test_no_development_secret_is_created_without_being_asked(dev_secret_file: Path) -> None:
    assert build_settings(lambda name: None).secret is None
    assert not dev_secret_file.exists()


@pytest.mark.parametrize("bad", [{"PORT": "abc"}, {"BETTER_AUTH_SECRET": "short"}])
def test_invalid_settings_leave_no_development_secret_behind(bad: dict[str, str], dev_secret_file: Path) -> None:
    with pytest.raises(SettingsError):
        build_settings(lookup(**bad), create_dev_secret=True)

    assert not dev_secret_file.exists()


def test_truncated_development_secret_is_a_settings_error(dev_secret_file: Path) -> None:
    dev_secret_file.parent.mkdir(parents=True)
    dev_secret_file.write_text("\n", encoding="ascii")

    with pytest.raises(SettingsError) as caught:
        build_settings(lambda name: None, create_dev_secret=True)

    assert caught.value.problems == [
        setting_problem(
            "BETTER_AUTH_SECRET",
            f"is unset and {dev_secret_file} holds fewer than 32 characters",
            f"delete {dev_secret_file} to get a new one, or set BETTER_AUTH_SECRET",
        )
    ]


def test_unreadable_development_secret_is_a_settings_error(dev_secret_file: Path) -> None:
    dev_secret_file.mkdir(parents=True)

    with pytest.raises(SettingsError) as caught:
        build_settings(lambda name: None, create_dev_secret=True)

    assert caught.value.problems == [
        setting_problem(
            "BETTER_AUTH_SECRET",
            f"is unset and {dev_secret_file} cannot be used: is a directory",
            f"delete {dev_secret_file} to get a new one, or set BETTER_AUTH_SECRET",
        )
    ]


# Contracts

ENV_EXAMPLE = ROOT / ".env.example"


def env_example_names() -> list[str]:
    return re.findall(r"^([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(encoding="utf-8"), flags=re.MULTILINE)


def test_env_example_lists_every_setting_once_and_nothing_else() -> None:
    names = env_example_names()

    assert sorted(names) == sorted(SETTING_NAMES)
    assert len(names) == len(set(names))


def test_env_example_values_are_the_defaults() -> None:
    assert load_settings(ENV_EXAMPLE, create_dev_secret=False) == build_settings(lambda name: None)


def test_settings_read_in_code_are_exactly_setting_names() -> None:
    source = inspect.getsource(settings_module)
    read = re.findall(r"reader\.\w+\(\s*\"([A-Z][A-Z0-9_]*)\"", source)

    assert sorted(set(read)) == sorted(SETTING_NAMES)
    assert len(SETTING_NAMES) == len(set(SETTING_NAMES))


def test_settings_fields_have_the_same_defaults_as_build_settings() -> None:
    assert build_settings(lambda name: None) == Settings()


# Weak secrets (issue 14, item 8)

STRONG = "Zq3xR7mK9vLp2Wd8sT4yB6nH1jF5cE0aG+u/Yo=="  # shaped like `openssl rand -base64 32`
WEAK_SECRETS = {
    "a" * 32: "repeats a short pattern",
    "0" * 32: "repeats a short pattern",
    "changeme" * 4: "is a placeholder or a published example value",
    "your-better-auth-secret-goes-here": "is a placeholder or a published example value",
    "better-auth-secret-12345678901234567890": "is a placeholder or a published example value",
    "dev_better_auth_secret_change_me_32_chars": "is a placeholder or a published example value",
    "abcdefghijklmnopqrstuvwxyz012345": "is mostly a run of consecutive characters (like abcdef or 123456)",
    SECRET: "is mostly one character",
    "acaccacaaacccacacaacaccaaccacaacx": "has too little variety (about 38 bits of randomness; at least 64 are needed)",
}


@pytest.mark.parametrize(("secret", "reason"), WEAK_SECRETS.items(), ids=range(len(WEAK_SECRETS)))
def test_production_refuses_a_weak_secret_saying_how_to_make_one(secret: str, reason: str) -> None:
    problems = problems_of(**PRODUCTION, BETTER_AUTH_SECRET=secret)

    assert problems == [
        setting_problem(
            "BETTER_AUTH_SECRET",
            f"{reason}, which production refuses: whoever guesses it can sign a token for any user",
            "generate one with `openssl rand -base64 32` and use it on both sides",
        )
    ]
    assert secret not in str(SettingsError(problems))


@pytest.mark.parametrize(("secret", "reason"), WEAK_SECRETS.items(), ids=range(len(WEAK_SECRETS)))
def test_development_accepts_a_weak_secret_and_says_why_it_is_weak(secret: str, reason: str) -> None:
    settings = build_settings(lookup(BETTER_AUTH_SECRET=secret))

    assert settings.secret == Secret(secret)
    assert settings.secret_weakness == reason


@pytest.mark.parametrize(
    "secret",
    [
        STRONG,
        "3f9a0c1e7b2d4a6f8e0c2b4d6f8a0c1e",
        "kq8XfZ2vN0rL7tY4pW1sH9mB3jD6gC5e-_aQ",
        "71940283561830472958163047285916",
    ],
    ids=["base64", "hex", "urlsafe", "digits"],
)
def test_production_accepts_a_generated_secret(secret: str) -> None:
    settings = build_settings(lookup(**PRODUCTION, BETTER_AUTH_SECRET=secret))

    assert settings.secret == Secret(secret)
    assert settings.secret_weakness == ""
