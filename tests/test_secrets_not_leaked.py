"""Secrets stay secret: BETTER_AUTH_SECRET, the database password and bearer
tokens never appear in the server's log, in a response body or header, in
/ready, in the startup failure lines, or in `inv env-check`'s report.

Each test runs the real thing (a live server at debug level, the invoke task
in a subprocess) with secrets that are easy to grep for, then greps every
byte it captured.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.support.apps import ready_server
from tests.support.databases import fresh_postgres_database
from tests.support.jwks_server import JWKSServer
from tests.support.live import LiveServer, free_port, run_to_exit
from tests.support.protocol import bearer
from tests.support.suite import ROOT
from tests.support.tokens import AUTH_URL, Tokens, forge
from tests.support.toolbelt import InvRun, inv, inv_env

pytestmark = pytest.mark.live

SECRET = "leak-canary-secret-" + uuid.uuid4().hex + "-0123456789abcdef"
PASSWORD = "leak-canary-pw-" + uuid.uuid4().hex


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username or 'postgres'}:{password}@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc))


def assert_nothing_leaked(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{secret[:12]}... leaked:\n{text[-3000:]}"
    assert "Traceback" not in text, text[-3000:]


def token_pieces(token: str) -> list[str]:
    """The token and each of its segments long enough to be unmistakable."""
    return [token, *(part for part in token.split(".") if len(part) > 16)]


@pytest.fixture(scope="module")
async def password_url(postgres_admin_url: str) -> AsyncIterator[str]:
    """A fresh PostgreSQL database, its URL carrying a password (trust auth ignores it)."""
    async with fresh_postgres_database(postgres_admin_url) as url:
        yield with_password(url, PASSWORD)


@pytest.fixture(scope="module")
def live(password_url: str, jwks: JWKSServer) -> Iterator[LiveServer]:
    with ready_server(password_url, jwks, LOG_LEVEL="debug") as server:
        yield server


def test_server_log_bodies_and_headers_hold_no_secret_or_token(live: LiveServer, tokens: Tokens) -> None:
    valid = tokens.signed("alice")
    hs256 = tokens.hs256("alice", secret=SECRET)
    forged = forge({"alg": "none"}, tokens.claims("alice"))
    expired = tokens.signed("alice", exp=1)
    wrong_secret = tokens.hs256("alice", secret="not-" + SECRET)
    sent = [valid, hs256, forged, expired, wrong_secret]
    captured: list[str] = []
    with httpx.Client(base_url=live.url, timeout=10) as http:
        for token in sent:
            auth = bearer(token)
            responses = [
                http.get("/api/me", headers=auth),
                http.post("/api/alice/tasks", json={"title": "t"}, headers=auth),
                http.post("/api/alice/tasks", content=b"{", headers={**auth, "Content-Type": "application/json"}),
                http.get("/api/bob/tasks", headers=auth),
                http.get("/api/alice/tasks", params={"q": SECRET[:50]}, headers=auth),
            ]
            captured += [f"{r.status_code} {r.headers} {r.text}" for r in responses]
        ready = http.get("/ready")
        captured += [f"{ready.headers} {ready.text}", http.get("/openapi.json").text, http.get("/health").text]

    assert ready.status_code == 200, ready.text
    assert "PostgreSQL" in ready.text or "postgres" in ready.text.lower()
    pieces = [piece for token in sent for piece in token_pieces(token)]
    assert_nothing_leaked(live.stderr + live.stdout, SECRET, PASSWORD, *pieces)
    assert_nothing_leaked("\n".join(captured), SECRET, PASSWORD, *pieces)


def test_ready_names_the_database_without_its_password(live: LiveServer) -> None:
    response = httpx.get(f"{live.url}/ready", timeout=10)

    assert response.status_code == 200
    checks = {check["name"]: check["detail"] for check in response.json()["checks"]}
    assert PASSWORD not in checks["database"]
    assert "answers" in checks["database"]


def test_startup_failures_name_the_cause_without_the_password_or_secret() -> None:
    refused = f"postgresql://app:{PASSWORD}@127.0.0.1:{free_port()}/todo"
    status, stderr = run_to_exit(
        {
            "APP_ENV": "development",
            "DATABASE_URL": refused,
            "BETTER_AUTH_SECRET": SECRET,
            "DB_CONNECT_RETRY_SECONDS": "0",
            "LOG_LEVEL": "debug",
        }
    )

    assert status == 1
    assert "127.0.0.1" in stderr
    assert_nothing_leaked(stderr, PASSWORD, SECRET)


def test_settings_errors_never_print_a_weak_secret_in_full() -> None:
    weak = "weak-" + uuid.uuid4().hex[:8]
    status, stderr = run_to_exit(
        {
            "APP_ENV": "production",
            "DATABASE_URL": f"postgresql://app:{PASSWORD}@db.example.com/todo",
            "BETTER_AUTH_URL": "https://auth.example.com",
            "BETTER_AUTH_SECRET": weak,
            "CORS_ORIGINS": "https://app.example.com",
        }
    )

    assert status == 1
    assert "BETTER_AUTH_SECRET" in stderr
    assert_nothing_leaked(stderr, weak, PASSWORD)


def _env_check_available() -> bool:
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "--list"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return "env-check" in result.stdout


@pytest.mark.skipif(not _env_check_available(), reason="`inv env-check` does not exist yet (issue: the toolbelt)")
@pytest.mark.parametrize("json_output", [False, True], ids=["text", "json"])
def test_env_check_report_holds_no_secret_or_password(jwks: JWKSServer, json_output: bool) -> None:
    env = {
        **os.environ,
        "APP_ENV": "development",
        "DATABASE_URL": f"postgresql://app:{PASSWORD}@127.0.0.1:{free_port()}/todo",
        "BETTER_AUTH_URL": AUTH_URL,
        "BETTER_AUTH_JWKS_URL": jwks.url,
        "BETTER_AUTH_SECRET": SECRET,
        "PORT": str(free_port()),
        "NO_COLOR": "1",
    }
    command = [sys.executable, "-m", "invoke", "env-check", *(["--json"] if json_output else [])]

    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)

    output = result.stdout + result.stderr
    assert result.returncode != 0, output  # the database is refused: a failure, named
    assert "DATABASE_URL" in output or "database" in output.lower(), output
    assert_nothing_leaked(output, SECRET, PASSWORD)


# Malformed `.env` lines (issue 14, item 3): their values never come back out, whatever the key's name.


def canary() -> str:
    """A value shaped like `openssl rand -base64 32`, '=' padding included (which makes a line look like KEY=...)."""
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def malformed_env_file(tmp_path: Path) -> tuple[Path, list[str]]:
    """A `.env` whose every value sits on a malformed line; its canary values."""
    values = [canary() for _ in range(6)]
    lines = [
        f"DATABASE_URL=sqlite:///{tmp_path / 'todo.sqlite3'}",
        f"PORT={free_port()}",
        f"BETTER_AUTH_SECRET={SECRET}",  # valid, so no development secret is created under var/
        f"BETTER_AUTH_SECRET: {values[0]}",
        f"BETTER_AUTH_SECRET {values[1]}",
        values[2],
        f"OPENAI_API_KEY={values[3]} # production key",
        f"DB_PASS='{values[4]}",
        f'RESEND_API_KEY={values[5]}"',
    ]
    env_file = tmp_path / ".env"
    env_file.write_text("\n".join(lines) + "\n")
    return env_file, values


def value_pieces(values: list[str]) -> list[str]:
    """Each value, and its first and last 10 characters without the padding."""
    return [piece for value in values for piece in (value, value[:10], value.rstrip("=")[-10:])]


@pytest.mark.parametrize("json_output", [False, True], ids=["text", "json"])
def test_env_check_prints_no_value_of_a_malformed_env_line(
    malformed_env_file: tuple[Path, list[str]], json_output: bool
) -> None:
    env_file, values = malformed_env_file
    env = inv_env(TODO_ENV_FILE=str(env_file), NO_COLOR="1")

    result = inv("env-check", *(["--json"] if json_output else []), env=env)

    output = result.stdout + result.stderr
    assert result.returncode == 1, output  # the colon line is a failure, named
    for code in ("ENV_KEY_INVALID", "ENV_INLINE_COMMENT", "ENV_UNBALANCED_QUOTES"):
        assert code in output, output
    assert "BETTER_AUTH_SECRET is followed by ':'" in output, output
    assert_nothing_leaked(output, SECRET, *value_pieces(values), "production key")


def test_inv_run_startup_log_prints_no_value_of_a_malformed_env_line(
    malformed_env_file: tuple[Path, list[str]],
) -> None:
    env_file, values = malformed_env_file
    port = int(next(line for line in env_file.read_text().splitlines() if line.startswith("PORT="))[5:])

    with InvRun("run", port=port, env=inv_env(TODO_ENV_FILE=str(env_file))) as server:
        server.start()
        server.wait_ready()
        assert server.stop() == 0, server.stderr
        log = server.stderr

    assert "WARNING tasks [-] ENV_KEY_INVALID: line 4 is not NAME=value: BETTER_AUTH_SECRET is followed by ':'" in log
    assert "ENV_UNBALANCED_QUOTES: line 8: DB_PASS's value starts with '" in log
    assert_nothing_leaked(log, SECRET, *value_pieces(values), "production key")


# Weak secrets (issue 14, item 8): production does not start, so a token forged with one meets no server.

PRODUCTION = {
    "APP_ENV": "production",
    "DATABASE_URL": f"postgresql://app:{PASSWORD}@db.example.com/todo",
    "BETTER_AUTH_URL": "https://auth.example.com",
    "CORS_ORIGINS": "https://app.example.com",
}


@pytest.mark.parametrize(
    ("weak", "reason"),
    [
        ("a" * 32, "repeats a short pattern"),
        ("0" * 32, "repeats a short pattern"),
        ("changeme" * 4, "is a placeholder or a published example value"),
        ("your-better-auth-secret-goes-here", "is a placeholder or a published example value"),
    ],
)
def test_production_refuses_to_start_with_a_weak_secret_so_forged_tokens_meet_no_server(
    tokens: Tokens, weak: str, reason: str
) -> None:
    with LiveServer(**PRODUCTION, BETTER_AUTH_SECRET=weak) as server:
        server.start()
        status = server.wait()
        stderr = server.stderr
        forged = tokens.hs256("alice", secret=weak, iss="https://auth.example.com", aud="https://auth.example.com")
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/api/me", headers=bearer(forged), timeout=5)

    assert status == 1
    assert stderr == (
        "error CONFIG_INVALID: 1 setting invalid:\n"
        f"  - BETTER_AUTH_SECRET {reason}, which production refuses: whoever guesses it can sign a token for any "
        "user: generate one with `openssl rand -base64 32` and use it on both sides\n"
    )
    assert_nothing_leaked(stderr, weak, PASSWORD)


def test_development_warns_about_a_weak_secret_in_the_log_and_in_env_check(
    database_url: str, jwks: JWKSServer, tmp_path: Path
) -> None:
    warning = (
        "SECRET_WEAK: BETTER_AUTH_SECRET is a placeholder or a published example value: accepted in development, "
        "refused in production; generate one with `openssl rand -base64 32` and use it on both sides"
    )
    weak = "your-better-auth-secret-goes-here"
    with ready_server(database_url, jwks, BETTER_AUTH_SECRET=weak) as server:
        assert server.stop() == 0
        log = server.stderr
    env_file = tmp_path / ".env"
    env_file.write_text(f"BETTER_AUTH_SECRET={weak}\nDATABASE_URL=sqlite:///{tmp_path / 'x.sqlite3'}\n")
    report = inv("env-check", "--json", env=inv_env(TODO_ENV_FILE=str(env_file), PORT=str(free_port())))

    assert log.count(f"WARNING backend.app [-] {warning}\n") == 1, log
    found = [r for r in json.loads(report.stdout)["results"] if r["code"] == "SECRET_WEAK"]
    assert found == [
        {
            "check": "settings",
            "status": "warn",
            "code": "SECRET_WEAK",
            "message": "BETTER_AUTH_SECRET is a placeholder or a published example value: accepted in development, "
            "refused in production",
            "fix": "generate one with `openssl rand -base64 32` and use it on both sides",
        }
    ]
    assert_nothing_leaked(log + report.stdout, weak, weak[:12])
