"""Each database failure, produced for real, is named with its fix (backend/dberrors.py).

Throwaway PostgreSQL clusters: one without TLS whose pg_hba.conf asks a role
for a scram-sha-256 password and rejects one database, one that accepts TLS
connections only. Plus a port nobody listens on, one that never answers, a
host under `.invalid`, and no network at all (a namespace from `unshare
--net`). Each case goes through the env-check database check, so what is
asserted is what `inv env-check` prints; the `transient` flag is what the
server's startup retries on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from backend.database import Database
from backend.dberrors import classify
from backend.diagnostics.database_check import check_database
from backend.errors import DatabaseUnreachableError
from backend.migrations import LATEST_VERSION, apply_migrations
from backend.settings import Settings
from tests.support import pgcluster
from tests.support.pgcluster import PostgresCluster
from tests.support.suite import ROOT, unavailable

PASSWORD = "right-password"
PLAIN_HBA = """\
local all all trust
host all alice 127.0.0.1/32 scram-sha-256
host locked all 127.0.0.1/32 reject
host all all 127.0.0.1/32 trust
"""
TLS_HBA = """\
local all all trust
hostssl all all 127.0.0.1/32 trust
"""


def _cluster(**options: object) -> PostgresCluster:
    if not pgcluster.available():
        unavailable("initdb/pg_ctl not found")
    cluster = PostgresCluster(**options)  # type: ignore[arg-type]
    cluster.start()
    return cluster


@pytest.fixture(scope="module")
def plain() -> Iterator[PostgresCluster]:
    cluster = _cluster(hba=PLAIN_HBA)
    cluster.psql(f"CREATE ROLE alice LOGIN PASSWORD '{PASSWORD}'")
    cluster.psql("CREATE ROLE limited LOGIN CONNECTION LIMIT 1")
    yield cluster
    cluster.remove()


@pytest.fixture(scope="module")
def tls() -> Iterator[PostgresCluster]:
    cluster = _cluster(hba=TLS_HBA, tls=True)
    yield cluster
    cluster.remove()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def diagnose(url: str, seconds: float = 3.0) -> tuple[str, str, str, str]:
    """(status, code, message, fix) that env-check reports for `url`."""
    results = await check_database(Settings(database_url=url), seconds=seconds)
    assert [r.check for r in results] == ["database", "database_tls"]  # the second says which TLS (test_dbtls.py)
    result = results[0]
    return result.status, result.code, result.message, result.fix


async def connect_error(url: str) -> DatabaseUnreachableError:
    """The classified error the server's startup gets for `url`."""
    db = Database(Settings(database_url=url, db_connect_timeout=1.0))
    try:
        await db.connect()
    except Exception as error:
        return classify(error, db.target)
    await db.disconnect()
    raise AssertionError(f"{url} connected")


async def test_wrong_password_is_auth_failed(plain: PostgresCluster) -> None:
    url = plain.url(user="alice", password="wrong-password")

    status, code, message, fix = await diagnose(url)

    assert (status, code) == ("fail", "DB_AUTH_FAILED")
    assert message == f"password authentication failed for user 'alice' on 127.0.0.1:{plain.port}"
    assert fix == "fix the password in DATABASE_URL (Neon: reset it in the dashboard and copy the new URL)"
    assert "wrong-password" not in message + fix
    assert (await connect_error(url)).transient is False


async def test_right_password_connects(plain: PostgresCluster) -> None:
    status, code, message, _ = await diagnose(plain.url(user="alice", password=PASSWORD))

    assert (status, code) == ("warn", "DB_SCHEMA_BEHIND")
    assert message.startswith(f"connected to alice@127.0.0.1:{plain.port}/postgres, but it has no tables yet")


async def test_missing_database_says_createdb(plain: PostgresCluster) -> None:
    status, code, message, fix = await diagnose(plain.url(database="todo"))

    assert (status, code) == ("fail", "DB_NOT_FOUND")
    assert message == f"database 'todo' does not exist on 127.0.0.1:{plain.port}"
    assert fix == "create it with `createdb todo` or fix the database name in DATABASE_URL"


async def test_missing_role_says_createuser(plain: PostgresCluster) -> None:
    status, code, message, fix = await diagnose(plain.url(user="ghost"))

    assert (status, code, message) == (
        "fail",
        "DB_ROLE_NOT_FOUND",
        f"role 'ghost' does not exist on 127.0.0.1:{plain.port}",
    )
    assert fix == "create it with `createuser --pwprompt ghost` or fix the user in DATABASE_URL"


async def test_pg_hba_rejection_is_access_denied(plain: PostgresCluster) -> None:
    status, code, message, _ = await diagnose(plain.url(database="locked"))

    assert (status, code) == ("fail", "DB_ACCESS_DENIED")
    assert message.startswith(f"127.0.0.1:{plain.port} refuses this client (pg_hba.conf rejects connection for host")


async def test_role_out_of_connections_is_too_many_connections(plain: PostgresCluster) -> None:
    held = await asyncpg.connect(plain.url(user="limited"))
    try:
        status, code, message, _ = await diagnose(plain.url(user="limited"))
        transient = (await connect_error(plain.url(user="limited"))).transient
    finally:
        await held.close()

    assert (status, code, message) == (
        "fail",
        "DB_TOO_MANY_CONNECTIONS",
        f"127.0.0.1:{plain.port} has no free connection slots",
    )
    assert transient is True


async def test_server_rejecting_an_option_is_connect_failed(plain: PostgresCluster) -> None:
    status, code, message, fix = await diagnose(plain.url() + "?options=-c%20no_such_setting%3D1")

    assert (status, code) == ("fail", "DB_CONNECT_FAILED")
    assert message.startswith(f"127.0.0.1:{plain.port} refused the connection: ")
    assert "\n" not in message
    assert fix == "run `inv env-check` for a full diagnosis"


async def test_sslmode_require_without_server_tls_is_tls_unavailable(plain: PostgresCluster) -> None:
    status, code, message, fix = await diagnose(plain.url() + "?sslmode=require")

    assert (status, code, message) == (
        "fail",
        "DB_TLS_UNAVAILABLE",
        f"127.0.0.1:{plain.port} does not offer TLS but DATABASE_URL requires it",
    )
    assert fix == "remove sslmode=require for a local server, or enable ssl in postgresql.conf"


async def test_plain_connection_to_tls_only_server_is_tls_required(tls: PostgresCluster) -> None:
    status, code, message, fix = await diagnose(tls.url() + "?sslmode=disable")

    assert (status, code, message, fix) == (
        "fail",
        "DB_TLS_REQUIRED",
        f"127.0.0.1:{tls.port} accepts only TLS connections",
        "add ?sslmode=require to DATABASE_URL",
    )


async def test_tls_connection_to_tls_only_server_works(tls: PostgresCluster) -> None:
    status, code, _, _ = await diagnose(tls.url() + "?sslmode=require")

    assert (status, code) == ("warn", "DB_SCHEMA_BEHIND")


async def test_self_signed_certificate_fails_verification(tls: PostgresCluster) -> None:
    status, code, message, _ = await diagnose(tls.url() + "?sslmode=verify-full&sslrootcert=system")

    assert (status, code) == ("fail", "DB_TLS_VERIFY_FAILED")
    assert message.startswith(f"the TLS certificate of 127.0.0.1:{tls.port} does not verify (")


async def test_verify_full_without_a_root_certificate_names_sslrootcert(
    tls: PostgresCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.postgresql/root.crt there

    status, code, message, fix = await diagnose(tls.url() + "?sslmode=verify-full")

    assert (status, code) == ("fail", "DB_TLS_ROOT_CERT_MISSING")
    assert message.startswith(f"sslmode=verify-ca/verify-full needs a CA certificate to check 127.0.0.1:{tls.port}")
    assert "\n" not in message
    assert fix.startswith("add sslrootcert=system to DATABASE_URL")


async def test_nothing_listening_is_connection_refused() -> None:
    port = closed_port()
    url = f"postgresql://postgres@127.0.0.1:{port}/todo"

    status, code, message, _ = await diagnose(url)

    assert (status, code, message) == (
        "fail",
        "DB_CONNECTION_REFUSED",
        f"nothing accepts connections on 127.0.0.1:{port}",
    )
    assert (await connect_error(url)).transient is True


async def test_startup_looks_again_within_a_second_and_logs_the_first_attempts_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = closed_port()
    db = Database(Settings(database_url=f"postgresql://postgres@127.0.0.1:{port}/todo"))

    with caplog.at_level(logging.WARNING, logger="backend.database"), pytest.raises(DatabaseUnreachableError) as raised:
        await db.connect_with_retry(4.0)

    lines = [record.getMessage() for record in caplog.records]
    waits = [float(line.rsplit("retrying in ", 1)[1].rstrip("s")) for line in lines]
    assert raised.value.code == "DB_CONNECTION_REFUSED"
    assert [line.split(",", 1)[0] for line in lines] == [
        "Database not ready (attempt 1",
        "Database not ready (attempt 2",
        "Database not ready (attempt 3",
    ]
    cause = f"DB_CONNECTION_REFUSED: nothing accepts connections on 127.0.0.1:{port}); retrying in "
    assert all(cause in line for line in lines)
    assert min(waits) > 0
    assert max(waits) <= 1.0


async def test_server_that_never_answers_is_a_timeout(silent_port: int) -> None:
    status, code, message, _ = await diagnose(f"postgresql://postgres@127.0.0.1:{silent_port}/todo", seconds=0.5)

    assert (status, code, message) == ("fail", "DB_TIMEOUT", f"127.0.0.1:{silent_port} did not answer in time")


async def test_host_that_does_not_exist_is_named() -> None:
    status, code, message, fix = await diagnose("postgresql://u:pw@db.example.invalid:5432/todo")

    assert (status, code) == ("fail", "DB_HOST_NOT_FOUND")
    assert message.startswith("the database host 'db.example.invalid' does not exist (DNS: ")
    assert fix == "fix the host in DATABASE_URL (copy it again from your provider's dashboard)"
    assert (await connect_error("postgresql://u:pw@db.example.invalid:5432/todo")).transient is False


# A network namespace with no network: `unshare --net` (root, Linux) gives
# ENETUNREACH for any address and EAI_AGAIN for any name, as a laptop off
# Wi-Fi does. The check runs in a child process inside that namespace.
_OFFLINE_CHECK = """
import asyncio, json, sys
from tests.test_dberrors import connect_error, diagnose
url = sys.argv[1]
status, code, message, fix = asyncio.run(diagnose(url))
error = asyncio.run(connect_error(url))
print(json.dumps([status, code, message, fix, error.code, error.transient]))
"""


def _diagnose_offline(url: str) -> list[object]:
    if sys.platform != "linux" or subprocess.run(["unshare", "--net", "true"], check=False).returncode != 0:
        pytest.skip("needs `unshare --net` (Linux, root)")
    result = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", _OFFLINE_CHECK, url],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def test_no_route_to_the_database_host_is_unreachable_and_transient() -> None:
    status, code, message, fix, startup_code, transient = _diagnose_offline("postgresql://u@192.0.2.10:5432/todo")

    assert (status, code) == ("fail", "DB_UNREACHABLE")
    assert message == "cannot reach 192.0.2.10:5432: Network is unreachable"
    assert fix == "check the network and the host in DATABASE_URL"
    assert (startup_code, transient) == ("DB_UNREACHABLE", True)


def test_dns_that_cannot_answer_is_temporary_and_transient() -> None:
    status, code, message, _, startup_code, transient = _diagnose_offline("postgresql://u@db.example.com:5432/todo")

    assert (status, code) == ("fail", "DB_DNS_TEMPORARY")
    assert message.startswith("looking up 'db.example.com' failed for now (")
    assert (startup_code, transient) == ("DB_DNS_TEMPORARY", True)


@pytest.fixture
async def fresh_database(plain: PostgresCluster) -> AsyncIterator[str]:
    plain.psql("DROP DATABASE IF EXISTS schema_test")
    plain.psql("CREATE DATABASE schema_test")
    yield plain.url(database="schema_test")
    plain.psql("DROP DATABASE IF EXISTS schema_test WITH (FORCE)")


async def test_schema_not_migrated_then_current_then_ahead(fresh_database: str) -> None:
    behind = await diagnose(fresh_database)
    db = Database(Settings(database_url=fresh_database))
    await db.connect()
    try:
        await apply_migrations(db)
        current = await diagnose(fresh_database)
        await db.execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'future')")
        ahead = await diagnose(fresh_database)
    finally:
        await db.disconnect()

    assert behind[:2] == ("warn", "DB_SCHEMA_BEHIND")
    assert current[:3] == ("ok", "OK", f"connected to {db.target.display}; schema current (version {LATEST_VERSION})")
    assert ahead[:3] == (
        "fail",
        "DB_SCHEMA_AHEAD",
        f"{db.target.display} has schema version 999, newer than this code knows ({LATEST_VERSION})",
    )


async def test_server_shutting_down_is_starting_and_transient() -> None:
    cluster = _cluster()
    try:
        held = await asyncpg.connect(cluster.url())
        # A smart shutdown waits for the held session and turns new ones away meanwhile.
        cluster._run("pg_ctl", "-D", str(cluster.data), "-m", "smart", "-W", "stop")
        await asyncio.sleep(0.3)
        status, code, message, _ = await diagnose(cluster.url())
        transient = (await connect_error(cluster.url())).transient
        await held.close()
    finally:
        cluster.remove()

    assert (status, code) == ("fail", "DB_STARTING")
    assert message.startswith(f"127.0.0.1:{cluster.port} is starting up or shutting down (")
    assert transient is True
