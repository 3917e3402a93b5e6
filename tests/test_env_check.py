"""`inv env-check` and the checks behind it, each against the real failure.

A port held by a child process, a JWKS server that is down, answers garbage
or holds no usable key, a SQLite file that is not a database, an interpreter
without the packages; and `inv env-check` itself run as a subprocess from a
subdirectory with `TODO_ENV_FILE` pointing at a temporary `.env`.
PostgreSQL failures are in tests/test_dberrors.py.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from backend.diagnostics.auth_check import check_auth
from backend.diagnostics.database_check import check_database
from backend.diagnostics.environment import check_packages, check_python
from backend.diagnostics.port_check import check_port
from backend.diagnostics.ports import ipv6_available
from backend.diagnostics.report import ReportOptions, run_checks
from backend.diagnostics.results import Result, exit_status, fail, ok, render_json, render_text, warn
from backend.diagnostics.settings_check import check_settings
from backend.migrations import LATEST_VERSION
from backend.settings import SETTING_NAMES, Secret, Settings, build_settings
from tests.support.jwks_server import JWKSServer
from tests.support.live import free_port, hold_port, stop_process
from tests.support.suite import ROOT, TEST_POOLER
from tests.support.tokens import SECRET

Finding = tuple[str, str, str]


def findings(results: list[Result]) -> list[Finding]:
    return [(result.status, result.code, result.message) for result in results]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting comes from the test runner's own environment."""
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def held_port() -> Iterator[tuple[int, int]]:
    """(port, pid) of a child process listening on 127.0.0.1."""
    port = free_port()
    holder = hold_port(port)
    yield port, holder.pid
    stop_process(holder)


# settings


def test_every_invalid_setting_is_one_result_naming_it() -> None:
    values = {"PORT": "abc", "LOG_LEVEL": "loud", "DATABASE_URL": "mysql://u@h/db"}

    outcome = check_settings(values.get)

    assert findings(outcome.results) == [
        ("fail", "DATABASE_URL_INVALID", "DATABASE_URL uses the scheme 'mysql', which this backend does not support"),
        ("fail", "CONFIG_INVALID", "PORT is 'abc', not a whole number"),
        ("fail", "CONFIG_INVALID", "LOG_LEVEL is 'loud', not one of debug, info, warning, error, critical"),
    ]
    assert outcome.invalid == {"PORT", "LOG_LEVEL", "DATABASE_URL"}
    assert outcome.settings is not None
    assert outcome.settings.port == 8000


def test_production_rules_are_reported_and_other_checks_still_get_settings() -> None:
    values = {"APP_ENV": "production", "BETTER_AUTH_URL": "http://auth.example.com"}

    outcome = check_settings(values.get)

    assert [(r.code, r.message.split(" is ")[0]) for r in outcome.results] == [
        ("CONFIG_INVALID", "DATABASE_URL"),
        ("CONFIG_INVALID", "BETTER_AUTH_URL"),
        ("CONFIG_INVALID", "BETTER_AUTH_JWKS_URL"),
    ]
    assert outcome.settings is not None


def test_huge_value_is_quoted_shortened() -> None:
    outcome = check_settings({"LOG_LEVEL": "x" * 10_000_000}.get)

    assert findings(outcome.results) == [
        (
            "fail",
            "CONFIG_INVALID",
            f"LOG_LEVEL is '{'x' * 40}...', not one of debug, info, warning, error, critical",
        )
    ]


def test_valid_settings_are_one_ok_line() -> None:
    outcome = check_settings({}.get)

    assert findings(outcome.results) == [("ok", "OK", "every setting is valid (APP_ENV=development)")]
    assert outcome.invalid == frozenset()


async def test_checks_of_invalid_settings_are_skipped(
    tmp_path: Path, clean_environment: None, jwks: JWKSServer
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"DATABASE_URL=mysql://u@h/db\nPORT=99999\nBETTER_AUTH_JWKS_URL={jwks.url}\n")

    results = await run_checks(ReportOptions(env_file=env_file, example_file=ROOT / ".env.example"))

    skipped = [(r.check, r.status, r.message) for r in results if r.code == "CHECK_SKIPPED"]
    assert skipped == [
        ("port", "warn", "not checked, because PORT is invalid (see settings)"),
        ("database", "warn", "not checked, because DATABASE_URL is invalid (see settings)"),
    ]
    assert [r.check for r in results] == [
        "python",
        "packages",
        "env_file",
        "settings",
        "settings",
        "port",
        "database",
        "auth",
    ]
    assert exit_status(results) == 1


# port


def test_port_held_by_a_child_process_names_its_pid(held_port: tuple[int, int]) -> None:
    port, pid = held_port

    results = check_port(Settings(port=port))

    assert [(r.status, r.code) for r in results] == [("fail", "PORT_IN_USE")]
    assert results[0].message.startswith(f"port {port} on 127.0.0.1 is in use by pid {pid} (")
    assert "http.server" in results[0].message
    assert results[0].fix == (
        f"`inv free-port --port {port} --kill` ends it, `inv run --port auto` takes the next free port, or set PORT"
    )


def test_free_port_is_checked_on_both_loopbacks() -> None:
    port = closed_port()

    results = check_port(Settings(port=port))

    hosts = "127.0.0.1, ::1" if ipv6_available() else "127.0.0.1"
    assert findings(results) == [("ok", "OK", f"port {port} is free on {hosts}")]


def test_address_this_machine_does_not_have_cannot_be_listened_on() -> None:
    results = check_port(Settings(port=closed_port(), hosts=("192.0.2.1",)))

    assert [(r.status, r.code) for r in results] == [("fail", "LISTEN_FAILED")]
    assert results[0].message.startswith("cannot listen on 192.0.2.1:")
    assert results[0].message.endswith(": Cannot assign requested address")


# auth


async def test_jwks_with_usable_keys_is_ok(jwks: JWKSServer) -> None:
    results = await check_auth(Settings(jwks_url=jwks.url))

    assert findings(results) == [("ok", "OK", f"{jwks.url}: 3 usable key(s) (ES256, EdDSA, RS256)")]


async def test_unreachable_jwks_on_this_machine_is_a_warning_in_development() -> None:
    url = f"http://127.0.0.1:{closed_port()}/api/auth/jwks"

    results = await check_auth(Settings(jwks_url=url))

    assert findings(results) == [
        (
            "warn",
            "AUTH_JWKS_UNREACHABLE",
            f"GET {url} failed: connection refused (nothing listens on {urlsplit(url).netloc}); "
            "requests with tokens will get 503 until it answers",
        )
    ]
    assert results[0].fix == (
        "start the frontend (`npm run dev`) so Better Auth serves its keys, or set BETTER_AUTH_URL to the address "
        "it runs at (the same value as in the frontend's .env)"
    )


async def test_unreachable_jwks_fails_in_production() -> None:
    url = f"http://127.0.0.1:{closed_port()}/api/auth/jwks"

    results = await check_auth(Settings(app_env="production", jwks_url=url))

    assert [(r.status, r.code) for r in results] == [("fail", "AUTH_JWKS_UNREACHABLE")]


async def test_jwks_host_that_does_not_exist_fails() -> None:
    url = "https://auth.example.invalid/api/auth/jwks"

    results = await check_auth(Settings(jwks_url=url))

    assert findings(results) == [
        ("fail", "AUTH_JWKS_UNREACHABLE", f"GET {url} failed: the host 'auth.example.invalid' is not known (DNS)")
    ]
    assert results[0].fix == "fix the host name in BETTER_AUTH_URL"


async def test_jwks_that_does_not_answer_in_time_is_unreachable(silent_port: int) -> None:
    url = f"http://127.0.0.1:{silent_port}/api/auth/jwks"

    results = await check_auth(Settings(jwks_url=url), seconds=0.3)

    assert findings(results) == [
        (
            "warn",
            "AUTH_JWKS_UNREACHABLE",
            f"GET {url} failed: no answer within 0.3s; requests with tokens will get 503 until it answers",
        )
    ]


async def test_jwks_answering_an_error_status_fails(provider: JWKSServer) -> None:
    provider.mode = "error"

    results = await check_auth(Settings(jwks_url=provider.url))

    assert findings(results) == [("fail", "AUTH_JWKS_HTTP_ERROR", f"GET {provider.url} answered HTTP 500")]


async def test_malformed_jwks_answer_fails(provider: JWKSServer) -> None:
    provider.mode = "garbage"

    results = await check_auth(Settings(jwks_url=provider.url))

    assert findings(results) == [("fail", "AUTH_JWKS_NOT_JSON", f"GET {provider.url} did not answer JSON")]


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"keys": []}, "holds no usable signing key (the key set is empty)"),
        ({"error": "not found"}, 'the JWKS answer is not a JSON object with a "keys" list'),
        (
            {"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]},
            "holds no usable signing key (key 0 (s) is a symmetric (oct) key, which a public key set must never carry)",
        ),
    ],
)
async def test_jwks_without_usable_keys_fails(provider: JWKSServer, document: object, reason: str) -> None:
    provider.document = document

    results = await check_auth(Settings(jwks_url=provider.url))

    prefix = f"GET {provider.url}: " if 'keys" list' in reason else f"GET {provider.url} "
    assert findings(results) == [("fail", "AUTH_JWKS_NO_KEYS", prefix + reason)]


async def test_unusable_key_beside_a_usable_one_is_a_warning(provider: JWKSServer) -> None:
    good = provider.keys[0].as_dict(private=False)
    provider.document = {"keys": [good, {"kty": "EC", "crv": "secp256k1", "kid": "k1", "x": "AA", "y": "AA"}]}

    results = await check_auth(Settings(jwks_url=provider.url))

    assert [(r.status, r.code) for r in results] == [("ok", "OK"), ("warn", "AUTH_JWKS_KEY_SKIPPED")]
    assert results[1].message.startswith(f"{provider.url}: key 1 (k1) ")


async def test_shared_secret_alone_is_called_out_when_jwks_is_down() -> None:
    url = f"http://127.0.0.1:{closed_port()}/api/auth/jwks"

    results = await check_auth(Settings(jwks_url=url, secret=Secret(SECRET)))

    assert [(r.status, r.code) for r in results] == [("warn", "AUTH_JWKS_UNREACHABLE"), ("warn", "AUTH_SECRET_ONLY")]
    assert "never signs with it" in results[1].message
    assert SECRET not in results[1].message


async def test_shared_secret_beside_working_jwks_is_ok(jwks: JWKSServer) -> None:
    results = await check_auth(Settings(jwks_url=jwks.url, secret=Secret(SECRET)))

    assert findings(results) == [
        ("ok", "OK", f"{jwks.url}: 3 usable key(s) (ES256, EdDSA, RS256); HS256 with BETTER_AUTH_SECRET too")
    ]


async def test_jwks_redirected_to_another_origin_fails_naming_status_and_location() -> None:
    origin, elsewhere = JWKSServer(), JWKSServer()
    elsewhere.add_key("EdDSA", "attacker-1")
    location = f"http://localhost:{elsewhere.port}/api/auth/jwks"
    origin.redirects["/api/auth/jwks"] = (302, location)
    try:
        results = await check_auth(Settings(jwks_url=origin.url))
    finally:
        origin.close()
        elsewhere.close()

    assert findings(results) == [
        (
            "fail",
            "AUTH_JWKS_REDIRECTED",
            f"GET {origin.url} answered HTTP 302 with Location '{location}', another origin than {origin.base_url}; "
            "keys are never fetched from another origin",
        )
    ]
    assert elsewhere.requests == 0


async def test_fixes_name_better_auth_url_when_the_jwks_url_is_derived_from_it() -> None:
    base = f"http://127.0.0.1:{closed_port()}"
    settings = build_settings({"BETTER_AUTH_URL": base, "BETTER_AUTH_SECRET": SECRET}.get)

    results = await check_auth(settings)

    assert [(r.status, r.code) for r in results] == [("warn", "AUTH_JWKS_UNREACHABLE"), ("warn", "AUTH_SECRET_ONLY")]
    assert results[0].fix.endswith(
        "set BETTER_AUTH_URL to the address it runs at (the same value as in the frontend's .env)"
    )
    assert results[1].fix.startswith("make BETTER_AUTH_URL lead to Better Auth's keys")
    assert "BETTER_AUTH_JWKS_URL" not in results[0].fix + results[1].fix


async def test_fixes_name_better_auth_jwks_url_when_that_was_set() -> None:
    url = f"http://127.0.0.1:{closed_port()}/keys"
    settings = build_settings({"BETTER_AUTH_JWKS_URL": url, "BETTER_AUTH_SECRET": SECRET}.get)

    results = await check_auth(settings)

    assert results[0].fix.endswith("or set BETTER_AUTH_JWKS_URL to the address it runs at")
    assert results[1].fix.startswith("make BETTER_AUTH_JWKS_URL lead to Better Auth's keys")


async def test_jwks_url_on_this_backends_own_port_is_named_as_such() -> None:
    port = closed_port()
    url = f"http://localhost:{port}/api/auth/jwks"

    results = await check_auth(build_settings({"BETTER_AUTH_URL": f"http://localhost:{port}", "PORT": str(port)}.get))

    assert [(r.status, r.code, r.fix) for r in results] == [
        (
            "fail",
            "AUTH_JWKS_IS_THIS_BACKEND",
            "set BETTER_AUTH_URL to the frontend's address, where Better Auth runs (e.g. http://localhost:3000), "
            "not ours",
        )
    ]
    assert results[0].message.startswith(f"GET {url} failed: connection refused")
    assert results[0].message.endswith(f"; that is this backend's own port (PORT={port})")


# database (SQLite; PostgreSQL in test_dberrors.py)


async def test_sqlite_file_not_yet_created_is_ok_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "var" / "todo.sqlite3"

    results = await check_database(Settings(database_url=f"sqlite:///{path}"))

    assert findings(results) == [("ok", "OK", f"SQLite file {path} does not exist yet; `inv run` creates it")]
    assert not (tmp_path / "var").exists()


async def test_sqlite_file_that_is_not_a_database_is_unusable(tmp_path: Path) -> None:
    path = tmp_path / "todo.sqlite3"
    path.write_text("this is not a database\n" * 100)

    results = await check_database(Settings(database_url=f"sqlite:///{path}"))

    assert findings(results) == [
        ("fail", "DB_SQLITE_UNUSABLE", f"cannot use the SQLite file {path}: file is not a database")
    ]


async def test_sqlite_path_under_a_file_is_unusable(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file, not a folder")
    path = tmp_path / "data" / "todo.sqlite3"

    results = await check_database(Settings(database_url=f"sqlite:///{path}"))

    assert findings(results) == [
        (
            "fail",
            "DB_SQLITE_UNUSABLE",
            f"cannot use the SQLite file {path}: {tmp_path / 'data'} is a file, not a folder",
        )
    ]


async def test_sqlite_without_tables_is_behind(tmp_path: Path) -> None:
    path = tmp_path / "todo.sqlite3"
    sqlite3.connect(path).close()

    results = await check_database(Settings(database_url=f"sqlite:///{path}"))

    assert findings(results) == [
        (
            "warn",
            "DB_SCHEMA_BEHIND",
            f"connected to SQLite file {path}, but it has no tables yet; this code expects version {LATEST_VERSION}",
        )
    ]
    assert results[0].fix == "`inv run` applies pending migrations when it starts, or run `inv migrate` now"


async def test_sqlite_migrated_by_a_newer_backend_is_ahead(tmp_path: Path) -> None:
    path = tmp_path / "todo.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at TEXT)")
        connection.execute("INSERT INTO schema_migrations VALUES (999, 'future', '')")
    connection.close()

    results = await check_database(Settings(database_url=f"sqlite:///{path}"))

    assert findings(results) == [
        (
            "fail",
            "DB_SCHEMA_AHEAD",
            f"SQLite file {path} has schema version 999, newer than this code knows ({LATEST_VERSION})",
        )
    ]


async def test_migrated_sqlite_is_current(settings: Settings, app: object) -> None:
    results = await check_database(settings)

    expected = [("database", "ok", "OK")]
    if not settings.database_url.startswith("sqlite"):  # TEST_DB=postgresql: a line says which TLS is in force
        expected.append(("database_tls", "ok", "OK"))
    # Through the suite's PgBouncer (TEST_POOLER) the plain URL hides a transaction pooler: said, with the fix.
    if TEST_POOLER:
        expected.append(("pooler", "warn", "DB_POOLER_UNDECLARED"))
    assert [(r.check, r.status, r.code) for r in results] == expected
    assert results[0].message.endswith(f"schema current (version {LATEST_VERSION})")


# environment


def test_running_python_is_supported() -> None:
    result = check_python()

    assert (result.status, result.code) == ("ok", "OK")


def old_python() -> str | None:
    """An installed Python 3.10 (pyenv's, or on PATH) that actually runs."""
    candidates = sorted(Path.home().glob(".pyenv/versions/3.10.*/bin/python3.10"))
    candidates += [Path(found) for found in [shutil.which("python3.10")] if found]
    for python in candidates:
        if subprocess.run([python, "-c", "pass"], capture_output=True, check=False).returncode == 0:
            return str(python)
    return None


def test_python_310_is_unsupported() -> None:
    python = old_python()
    if python is None:
        pytest.skip("no Python 3.10 on this machine")
    script = "from backend.diagnostics.environment import check_python; r = check_python(); print(r.code, r.message)"

    output = subprocess.run([python, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True).stdout

    assert output.startswith("PYTHON_UNSUPPORTED Python 3.10.")
    assert output.rstrip().endswith("is not supported; the backend needs 3.11, 3.12, 3.13")


def test_interpreter_without_the_packages_names_pip_install() -> None:
    # -S: no site-packages, so only the standard library is importable.
    script = (
        "from backend.diagnostics.environment import check_environment; from backend.diagnostics.results import "
        "render_json, exit_status; r = check_environment(); print(render_json(r)); raise SystemExit(exit_status(r))"
    )

    result = subprocess.run([sys.executable, "-S", "-c", script], cwd=ROOT, capture_output=True, text=True, check=False)

    assert result.returncode == 1, result.stderr
    missing = [r for r in json.loads(result.stdout)["results"] if r["code"] == "PACKAGE_MISSING"]
    assert len(missing) == 12
    assert missing[0]["message"] == f"the package 'starlette' is not installed for {sys.executable}"
    assert missing[0]["fix"] == "run `pip install -r requirements.txt` in the project's virtualenv"


def test_missing_module_is_named() -> None:
    results = check_packages({"no_such_module_xyz": "no-such-dist"})

    assert [(r.status, r.code) for r in results] == [("fail", "PACKAGE_MISSING")]


# rendering


def test_text_report_marks_each_line_and_colours_only_when_asked() -> None:
    results = [
        ok("python", "Python 3.12.1"),
        fail("database", code="DB_NOT_FOUND", message="database 'todo' does not exist", fix="createdb todo"),
    ]

    plain = render_text(results)

    assert plain.splitlines() == [
        "ok   python    Python 3.12.1",
        "FAIL database  DB_NOT_FOUND: database 'todo' does not exist",
        "               fix: createdb todo",
        "1 ok, 0 warning(s), 1 failure(s)",
    ]
    assert "\033[" not in plain
    assert "\033[31mFAIL\033[0m" in render_text(results, colour=True)


def test_json_report_is_stable() -> None:
    results = [warn("port", code="CHECK_SKIPPED", message="not checked", fix="fix it")]

    document = json.loads(render_json(results))

    assert document == {
        "version": 1,
        "ok": True,
        "summary": {"ok": 0, "warn": 1, "fail": 0},
        "results": [
            {"check": "port", "status": "warn", "code": "CHECK_SKIPPED", "message": "not checked", "fix": "fix it"}
        ],
    }


# `inv env-check` as a subprocess


def run_env_check(env_file: Path, *args: str, cwd: Path = ROOT / "docs") -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key not in SETTING_NAMES}
    environment["TODO_ENV_FILE"] = str(env_file)
    inv = Path(sys.executable).parent / "inv"
    command = [str(inv)] if inv.exists() else [sys.executable, "-m", "invoke"]
    return subprocess.run(
        [*command, "env-check", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def good_env_file(tmp_path: Path, jwks: JWKSServer) -> Path:
    env_file = tmp_path / ".env"
    database = tmp_path / "todo.sqlite3"
    env_file.write_text(f"DATABASE_URL=sqlite:///{database}\nBETTER_AUTH_JWKS_URL={jwks.url}\nPORT={closed_port()}\n")
    return env_file


def test_env_check_from_a_subdirectory_reads_the_configured_env_file(good_env_file: Path) -> None:
    result = run_env_check(good_env_file, cwd=ROOT / "backend" / "diagnostics")

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[2] == f"ok   env_file  {good_env_file}: 3 setting(s), well-formed"
    assert lines[-1] == "7 ok, 0 warning(s), 0 failure(s)"
    assert "\033[" not in result.stdout  # not a terminal: no colour
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("content", "code"), [(None, "ENV_FILE_UNREADABLE"), (b"PORT=9000\n\xff\xfe", "ENV_FILE_NOT_TEXT")]
)
def test_env_check_with_an_unreadable_env_file_reports_it_once(
    tmp_path: Path, content: bytes | None, code: str
) -> None:
    env_file = tmp_path / ".env"
    if content is None:
        env_file.mkdir()
    else:
        env_file.write_bytes(content)

    result = run_env_check(env_file, "--json")

    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    found = [(r["check"], r["status"], r["code"]) for r in document["results"]]
    assert found[2:4] == [("env_file", "fail", code), ("settings", "ok", "OK")]
    assert document["results"][3]["message"] == (
        "every setting is valid (APP_ENV=development), from the environment alone (.env unreadable)"
    )


def test_env_check_names_holder_of_busy_port(tmp_path: Path, held_port: tuple[int, int]) -> None:
    port, pid = held_port
    env_file = tmp_path / ".env"
    env_file.write_text(f"PORT={port}\nDATABASE_URL=sqlite:///{tmp_path / 'db.sqlite3'}\n")

    result = run_env_check(env_file)

    assert result.returncode == 1, result.stderr
    assert f"FAIL port      PORT_IN_USE: port {port} on 127.0.0.1 is in use by pid {pid} (" in result.stdout
    assert f"               fix: `inv free-port --port {port} --kill` ends it" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_env_check_json_is_parseable_and_exits_1_on_failure(tmp_path: Path, jwks: JWKSServer) -> None:
    env_file = tmp_path / ".env"
    env_file.write_bytes(b"PORT=abc\nDATABSE_URL=x\nBINARY=\x00\x01\n")

    result = run_env_check(env_file, "--json")

    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is False
    codes = [(r["check"], r["status"], r["code"]) for r in document["results"]]
    assert ("env_file", "fail", "ENV_FILE_NOT_TEXT") in codes
    assert ("settings", "fail", "CONFIG_INVALID") in codes
    assert [r["check"] for r in document["results"]][:2] == ["python", "packages"]


def test_env_check_json_exits_0_with_warnings_only(good_env_file: Path) -> None:
    good_env_file.write_text(good_env_file.read_text() + "NEXT_PUBLIC_URL=http://localhost:3000\n")

    result = run_env_check(good_env_file, "--json")

    assert result.returncode == 0, result.stdout
    document = json.loads(result.stdout)
    assert document["ok"] is True
    assert document["summary"] == {"ok": 6, "warn": 1, "fail": 0}


def run_in_terminal(env_file: Path, **variables: str) -> str:
    """`inv env-check` with its stdout on a pseudo-terminal; what it wrote there."""
    environment = {key: value for key, value in os.environ.items() if key not in SETTING_NAMES and key != "NO_COLOR"}
    environment.update(TODO_ENV_FILE=str(env_file), TERM="xterm", **variables)
    main, child = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "invoke", "env-check"],
        cwd=ROOT,
        env=environment,
        stdout=child,
        stderr=subprocess.DEVNULL,
    )
    os.close(child)
    output = bytearray()
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    process.wait(timeout=60)
    os.close(main)
    return output.decode()


def test_env_check_colours_a_terminal_unless_no_color(good_env_file: Path) -> None:
    coloured = run_in_terminal(good_env_file)
    plain = run_in_terminal(good_env_file, NO_COLOR="1")

    assert "\033[32mok  \033[0m python" in coloured
    assert "\033[" not in plain
    assert "ok   python" in plain
