"""TLS to PostgreSQL (backend/dbtls.py), proven against a real server.

A throwaway cluster accepts `hostssl ... scram-sha-256` only, with a
certificate for `localhost` signed by a CA made for the test: to the system's
CAs it is exactly what a man in the middle would present. The same URL goes
through `inv env-check`'s database check (what it prints), the server's
startup (what it logs, how it stops), and the parsed policy (what it says).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backend.dbtls import TlsPolicy
from backend.dburl import parse_database_url
from backend.diagnostics.database_check import check_database, check_tls
from backend.diagnostics.results import Result, ok, warn
from backend.settings import Settings
from tests.support import pgcluster
from tests.support.apps import server_env
from tests.support.live import LiveServer, run_to_exit
from tests.support.pgcluster import PostgresCluster
from tests.support.suite import unavailable
from tests.support.tokens import SECRET

PASSWORD = "tls-pass-7Qx"
SCRAM_OVER_TLS_ONLY = """\
local all all trust
hostssl all all 127.0.0.1/32 scram-sha-256
hostssl all all ::1/128 scram-sha-256
"""
CHANNEL_BINDING_NOTE = "channel_binding=require: asyncpg cannot bind channels, so the certificate is verified instead"
UNTRUSTED_FIX = (
    "asyncpg cannot bind channels, so the certificate must verify instead: for a server with its own CA "
    "add sslrootcert=/path/to/ca.pem; with a public CA install the system's CA list (ca-certificates) "
    "and check that no proxy intercepts TLS. Removing channel_binding=require would connect without this protection"
)
WRONG_NAME_FIX = (
    "asyncpg cannot bind channels, so the certificate must name the host instead: use the host name "
    "your provider gives (copy the URL again; an IP address or an alias does not match). "
    "Removing channel_binding=require would connect without this protection"
)


def start_cluster(**options: Any) -> PostgresCluster:
    if not pgcluster.available():
        unavailable("initdb/pg_ctl not found")
    cluster = PostgresCluster(**options)
    cluster.start()
    return cluster


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresCluster]:
    """TLS with SCRAM only, the certificate for `localhost`; role `app` owns database `todo`."""
    cluster = start_cluster(hba=SCRAM_OVER_TLS_ONLY, tls=True, tls_names=("localhost",))
    cluster.psql(f"CREATE ROLE app LOGIN PASSWORD '{PASSWORD}'")
    cluster.psql("CREATE DATABASE todo OWNER app")
    yield cluster
    cluster.remove()


@pytest.fixture(scope="module")
def ca(server: PostgresCluster) -> Path:
    assert server.ca_file is not None
    return server.ca_file


def url(server: PostgresCluster, query: str, *, host: str = "localhost", password: str = PASSWORD) -> str:
    return f"{server.url('todo', 'app', password, host=host)}?{query}"


async def env_check(database_url: str) -> list[tuple[str, str, str, str]]:
    """(check, status, code, message) of each line `inv env-check` prints for the database."""
    results = await check_database(Settings(database_url=database_url), seconds=5.0)
    return [(r.check, r.status, r.code, r.message) for r in results]


def assert_connected(lines: list[tuple[str, str, str, str]], server: PostgresCluster, host: str = "localhost") -> None:
    """The database line says it connected (the schema may be new or migrated: other tests start servers)."""
    check, status, _, message = lines[0]
    assert (check, status) in {("database", "ok"), ("database", "warn")}, lines
    assert message.startswith(f"connected to app@{host}:{server.port}/todo"), lines
    assert len(lines) == 2, lines


async def failure(database_url: str) -> Result:
    results = await check_database(Settings(database_url=database_url), seconds=5.0)
    assert results[0].status == "fail", results
    return results[0]


# The man in the middle: channel_binding=require and a certificate that does not verify


async def test_channel_binding_require_refuses_a_certificate_the_system_does_not_trust(
    server: PostgresCluster,
) -> None:
    found = await failure(url(server, "sslmode=require&channel_binding=require"))

    assert found.code == "DB_TLS_CHANNEL_BINDING_UNVERIFIED"
    assert found.message == (
        f"channel_binding=require, and the TLS certificate of localhost:{server.port} does not verify against "
        "the system's CAs (unable to get local issuer certificate): refused, as a man in the middle would be"
    )
    assert found.fix == UNTRUSTED_FIX


async def test_channel_binding_refusal_comes_before_the_password_is_tried(server: PostgresCluster) -> None:
    found = await failure(url(server, "sslmode=require&channel_binding=require", password="wrong"))

    assert found.code == "DB_TLS_CHANNEL_BINDING_UNVERIFIED"  # not DB_AUTH_FAILED: the login never started


async def test_channel_binding_require_with_the_wrong_host_name_names_the_host(
    server: PostgresCluster, ca: Path
) -> None:
    found = await failure(url(server, f"sslrootcert={ca}&channel_binding=require", host="127.0.0.1"))

    assert found.code == "DB_TLS_CHANNEL_BINDING_UNVERIFIED"
    assert found.message == (
        f"channel_binding=require, and the TLS certificate of 127.0.0.1:{server.port} is not issued for "
        "'127.0.0.1' (IP address mismatch, certificate is not valid for '127.0.0.1'.): "
        "refused, as a man in the middle would be"
    )
    assert found.fix == WRONG_NAME_FIX


def test_server_with_channel_binding_to_an_untrusted_certificate_exits_1_naming_it(server: PostgresCluster) -> None:
    status, stderr = run_to_exit(
        {
            "APP_ENV": "development",
            "DATABASE_URL": url(server, "sslmode=require&channel_binding=require"),
            "BETTER_AUTH_SECRET": SECRET,
            "DB_CONNECT_RETRY_SECONDS": "0",
        },
        timeout=30,  # a hang detector: the refusal itself takes one handshake
    )

    assert status == 1, stderr
    line = (
        "error DB_TLS_CHANNEL_BINDING_UNVERIFIED: channel_binding=require, "
        f"and the TLS certificate of localhost:{server.port} does not verify against the system's CAs"
    )
    assert stderr.count(line) == 1, stderr
    assert "Traceback" not in stderr
    assert PASSWORD not in stderr


async def test_channel_binding_require_to_a_server_without_tls_says_to_remove_it() -> None:
    cluster = start_cluster(hba="local all all trust\nhost all all 127.0.0.1/32 trust\n")
    try:
        found = await failure(f"{cluster.url()}?channel_binding=require")
    finally:
        cluster.remove()

    assert (found.code, found.message, found.fix) == (
        "DB_TLS_UNAVAILABLE",
        f"127.0.0.1:{cluster.port} does not offer TLS but DATABASE_URL requires it",
        "channel_binding=require needs TLS: for a local server remove it (and any sslmode=require), "
        "or enable ssl in postgresql.conf",
    )


# Verified connections


async def test_channel_binding_require_connects_when_the_system_trusts_the_ca(
    server: PostgresCluster, ca: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # OpenSSL's system trust store, as Neon's CA is in the real one

    lines = await env_check(url(server, "sslmode=require&channel_binding=require"))

    assert_connected(lines, server)
    assert lines[1] == (
        "database_tls",
        "ok",
        "OK",
        f"TLS, certificate verified against the system's CAs for host localhost ({CHANNEL_BINDING_NOTE})",
    )


async def test_verify_full_with_sslrootcert_connects_and_says_so(server: PostgresCluster, ca: Path) -> None:
    lines = await env_check(url(server, f"sslmode=verify-full&sslrootcert={ca}"))

    assert_connected(lines, server)
    assert lines[1][:3] == ("database_tls", "ok", "OK")
    assert lines[1][3] == f"TLS, certificate verified against {ca} for host localhost (sslmode=verify-full)"


async def test_channel_binding_require_with_sslrootcert_connects_verified(server: PostgresCluster, ca: Path) -> None:
    lines = await env_check(url(server, f"sslmode=require&channel_binding=require&sslrootcert={ca}"))

    assert_connected(lines, server)
    assert lines[1] == (
        "database_tls",
        "ok",
        "OK",
        f"TLS, certificate verified against {ca} for host localhost ({CHANNEL_BINDING_NOTE})",
    )


async def test_sslmode_require_connects_without_verifying_and_says_so(server: PostgresCluster) -> None:
    lines = await env_check(url(server, "sslmode=require"))

    assert_connected(lines, server)  # the untrusted certificate is not checked
    assert lines[1] == ("database_tls", "ok", "OK", "TLS without certificate verification (sslmode=require)")


async def test_verify_full_with_the_wrong_host_name_is_host_mismatch(server: PostgresCluster, ca: Path) -> None:
    found = await failure(url(server, f"sslmode=verify-full&sslrootcert={ca}", host="127.0.0.1"))

    assert (found.code, found.message, found.fix) == (
        "DB_TLS_HOST_MISMATCH",
        f"the TLS certificate of 127.0.0.1:{server.port} is not issued for '127.0.0.1' "
        "(IP address mismatch, certificate is not valid for '127.0.0.1'.)",
        "use the host name the certificate was issued for (copy the URL again from your provider; "
        "an IP address or an alias does not match), or sslmode=verify-ca to check the CA only",
    )


async def test_verify_ca_accepts_the_certificate_under_another_host_name(server: PostgresCluster, ca: Path) -> None:
    lines = await env_check(url(server, f"sslmode=verify-ca&sslrootcert={ca}", host="127.0.0.1"))

    assert_connected(lines, server, host="127.0.0.1")
    assert lines[1][3] == f"TLS, certificate verified against {ca}; host name not checked (sslmode=verify-ca)"


async def test_verify_full_against_the_system_cas_is_verify_failed_naming_the_cause(server: PostgresCluster) -> None:
    found = await failure(url(server, "sslmode=verify-full&sslrootcert=system"))

    assert (found.code, found.message) == (
        "DB_TLS_VERIFY_FAILED",
        f"the TLS certificate of localhost:{server.port} does not verify "
        "(unable to get local issuer certificate; trusted: the system's CAs)",
    )
    assert found.fix == (
        "point sslrootcert at the CA file that signed the server's certificate "
        "(sslrootcert=system for a public CA such as Neon's); sslmode=require encrypts without verifying"
    )


def test_startup_log_says_which_tls_verification_is_in_force(server: PostgresCluster, ca: Path) -> None:
    settings = {**server_env(url(server, "sslmode=require&channel_binding=require")), "SSL_CERT_FILE": str(ca)}
    with LiveServer(**settings) as live:
        live.start()
        live.wait_ready(timeout=30)  # generous: the machine may be busy
        status = live.stop()
        stderr = live.stderr

    expected = (
        "INFO    backend.app [-] Database TLS: TLS, certificate verified against the system's CAs for host "
        f"localhost ({CHANNEL_BINDING_NOTE})"
    )
    assert status == 0, stderr
    assert stderr.count(expected) == 1, stderr


# What the policy says, and when env-check warns (no server needed)


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("", "TLS if the server offers it, certificate not verified (no sslmode: asyncpg's default, prefer)"),
        ("sslmode=disable", "no TLS (sslmode=disable)"),
        ("sslmode=allow", "TLS only if the server insists, certificate not verified (sslmode=allow)"),
        ("sslmode=prefer", "TLS if the server offers it, certificate not verified (sslmode=prefer)"),
        ("sslmode=require", "TLS without certificate verification (sslmode=require)"),
        (
            "sslmode=verify-full",
            "TLS, certificate verified against ~/.postgresql/root.crt (or PGSSLROOTCERT) for host db.example.com "
            "(sslmode=verify-full)",
        ),
        (
            "sslrootcert=system",
            "TLS, certificate verified against the system's CAs for host db.example.com (sslmode=verify-full)",
        ),
        (
            "channel_binding=require",
            f"TLS, certificate verified against the system's CAs for host db.example.com ({CHANNEL_BINDING_NOTE})",
        ),
    ],
)
def test_each_url_describes_the_tls_in_force(query: str, text: str) -> None:
    target = parse_database_url(f"postgresql://u:p@db.example.com/todo?{query}")

    assert target.tls is not None
    assert target.tls.describe(target.host) == text


def test_require_with_a_ca_file_describes_the_libpq_rule(ca: Path) -> None:
    policy = TlsPolicy("verify-ca", str(ca), asked="require")

    assert policy.describe("db.example.com") == (
        f"TLS, certificate verified against {ca}; host name not checked (sslmode=require with sslrootcert, as in libpq)"
    )


def test_unix_socket_has_no_tls() -> None:
    target = parse_database_url("postgresql:///todo?host=/var/run/postgresql")

    assert check_tls(Settings(), target) == ok("database_tls", "no TLS: a Unix socket in /var/run/postgresql")


def test_sqlite_has_no_tls_line() -> None:
    assert check_tls(Settings(), parse_database_url("sqlite:///var/x.sqlite3")) is None


PRODUCTION = Settings(app_env="production")
VERIFY_HOW = "system works for a public CA such as Neon's; Supabase and RDS give a CA file to name instead of system"


def test_unverified_tls_to_a_remote_server_in_production_is_a_warning() -> None:
    target = parse_database_url("postgresql://u:p@db.example.com/todo?sslmode=require")

    assert check_tls(PRODUCTION, target) == warn(
        "database_tls",
        code="DB_TLS_UNVERIFIED",
        message="TLS without certificate verification (sslmode=require): "
        "anyone in the path to db.example.com could pose as the database",
        fix=f"add sslmode=verify-full&sslrootcert=system to DATABASE_URL; {VERIFY_HOW}",
    )


def test_no_tls_to_a_remote_server_in_production_is_a_warning() -> None:
    target = parse_database_url("postgresql://u:p@db.example.com/todo?sslmode=disable")

    assert check_tls(PRODUCTION, target) == warn(
        "database_tls",
        code="DB_TLS_OFF",
        message="no TLS (sslmode=disable): the traffic to db.example.com is not encrypted",
        fix="add sslmode=verify-full&sslrootcert=system to DATABASE_URL (at least sslmode=require); " + VERIFY_HOW,
    )


@pytest.mark.parametrize(
    ("settings", "raw"),
    [
        (Settings(), "postgresql://u:p@db.example.com/todo?sslmode=require"),  # development
        (PRODUCTION, "postgresql://u:p@127.0.0.1/todo?sslmode=disable"),  # this machine
        (PRODUCTION, "postgresql://u:p@db.example.com/todo?channel_binding=require"),  # verified
    ],
)
def test_tls_line_is_ok_in_development_on_this_machine_or_when_verified(settings: Settings, raw: str) -> None:
    target = parse_database_url(raw)

    found = check_tls(settings, target)

    assert found is not None
    assert (found.status, found.code) == ("ok", "OK")
