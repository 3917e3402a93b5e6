"""The real server: `python -m backend` in a subprocess, over real sockets.

What an operator sees: where it listens, its headers, how it stops on a
signal, and the one named line (never a traceback) when it cannot start.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from http.client import HTTPResponse
from typing import Any

import httpx
import pytest

from backend.database import Database
from backend.devtokens import mint_token
from backend.diagnostics.ports import ipv6_available
from backend.migrations import LATEST_VERSION
from backend.settings import Settings
from tests.support import pgcluster
from tests.support.apps import server_env
from tests.support.live import LiveServer, free_port, hold_port, run_to_exit, stop_process
from tests.support.pgcluster import PostgresCluster
from tests.support.protocol import PROBLEM, bearer
from tests.support.suite import unavailable

pytestmark = pytest.mark.live

# Hypercorn's line, in our log format: a worker whose logging is not set up prints nothing.
LISTENING = "INFO    hypercorn.error [-] Running on "
APP_PASSWORD = "app-pw-4Kd"

needs_ipv6 = pytest.mark.skipif(not ipv6_available(), reason="IPv6 is not available on this machine")


@pytest.fixture(scope="module")
def server_settings(database_url: str) -> dict[str, str]:
    """The environment every live server gets, on top of "every other setting empty"."""
    return server_env(database_url)


@pytest.fixture
def server(server_settings: dict[str, str]) -> Iterator[LiveServer]:
    """A started server of this test's own, answering /ready; killed at teardown whatever happened."""
    with LiveServer(**server_settings) as live:
        live.start()
        live.wait_ready()
        yield live


@pytest.fixture(scope="module")
def shared(server_settings: dict[str, str]) -> Iterator[LiveServer]:
    """One started server for the tests that only send requests to it."""
    with LiveServer(**server_settings) as live:
        live.start()
        live.wait_ready()
        yield live


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


def new_user() -> str:
    """A user id no other test (or earlier run on the same database) has used."""
    return f"live-{uuid.uuid4().hex[:12]}"


def minted_bearer(settings: Settings, user: str) -> dict[str, str]:
    return bearer(mint_token(settings, user, email=f"{user}@example.com", name="Live"))


def assert_no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr


# Listening and answering


@needs_ipv6
def test_server_answers_health_on_ipv4_and_ipv6_loopback_by_default(shared: LiveServer, http: httpx.Client) -> None:
    for base in (shared.url, shared.url6):
        response = http.get(f"{base}/health")

        assert response.status_code == 200, base
        assert response.json() == {"status": "ok"}


def test_ready_returns_200_naming_each_check(shared: LiveServer, http: httpx.Client) -> None:
    response = http.get(f"{shared.url}/ready")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert [(check["name"], check["ok"]) for check in body["checks"]] == [("database", True), ("schema", True)]
    assert body["checks"][1]["detail"] == f"schema version {LATEST_VERSION} of {LATEST_VERSION}"
    assert "retry-after" not in response.headers


@needs_ipv6
def test_task_created_over_ipv4_is_listed_over_ipv6_with_a_dev_token(shared: LiveServer, http: httpx.Client) -> None:
    user = new_user()
    auth = minted_bearer(shared.settings, user)

    created = http.post(f"{shared.url}/api/{user}/tasks", json={"title": "  Ship it  "}, headers=auth)
    listed = http.get(f"{shared.url6}/api/{user}/tasks", headers=auth)

    assert created.status_code == 201, created.text
    task = created.json()
    assert task["title"] == "Ship it"
    assert task["user_id"] == user
    assert task["completed"] is False
    assert created.headers["location"] == f"/api/{user}/tasks/{task['id']}"
    assert listed.status_code == 200, listed.text
    assert listed.json() == [task]
    assert listed.headers["x-total-count"] == "1"


def test_request_without_token_is_refused_with_401_over_the_wire(shared: LiveServer, http: httpx.Client) -> None:
    response = http.get(f"{shared.url}/api/alice/tasks")

    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert response.json()["code"] == "TOKEN_MISSING"


# Headers


@pytest.mark.parametrize("path", ["/health", "/ready", "/api/alice/tasks", "/no-such-route"])
def test_responses_carry_no_server_banner_and_security_headers(
    shared: LiveServer, http: httpx.Client, path: str
) -> None:
    response = http.get(f"{shared.url}{path}")

    assert "server" not in response.headers
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert response.headers["x-content-type-options"] == "nosniff"


def test_valid_incoming_request_id_is_echoed_and_invalid_one_replaced(shared: LiveServer, http: httpx.Client) -> None:
    echoed = http.get(f"{shared.url}/health", headers={"X-Request-ID": "trace-42.a:b_c"})
    replaced = http.get(f"{shared.url}/health", headers={"X-Request-ID": "bad id with spaces"})

    assert echoed.headers["x-request-id"] == "trace-42.a:b_c"
    assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])


def test_each_request_gets_its_own_request_id(shared: LiveServer, http: httpx.Client) -> None:
    ids = {http.get(f"{shared.url}/health").headers["x-request-id"] for _ in range(3)}

    assert len(ids) == 3


# Signals


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_while_idle_exits_0_promptly_and_says_stopped_cleanly(
    server: LiveServer, http: httpx.Client, signum: int
) -> None:
    # A keep-alive connection stays open in `http`: it must not hold the shutdown up.
    assert http.get(f"{server.url}/health").status_code == 200
    started = time.monotonic()

    status = server.stop(signum)

    assert status == 0, server.stderr
    assert time.monotonic() - started < 5
    assert "Stopped cleanly" in server.stderr
    assert_no_traceback(server.stderr)


def test_sigterm_during_slow_upload_lets_the_request_finish_then_exits_0(server: LiveServer) -> None:
    user = new_user()
    body = json.dumps({"title": "Written during shutdown"}).encode()
    upload = SlowUpload.open(server, f"/api/{user}/tasks", minted_bearer(server.settings, user), body)
    try:
        upload.send(body[:10])
        time.sleep(0.5)  # hypercorn has parsed the headers: the request is in flight

        server.send_signal(signal.SIGTERM)
        wait_refused("127.0.0.1", server.port)  # the signal is being handled: no new connections
        time.sleep(1.0)
        assert server.running()  # waiting for the request, not cutting it
        upload.send(body[10:])
        status, response = upload.response()
    finally:
        upload.close()

    assert status == 201, response
    assert response["title"] == "Written during shutdown"
    assert server.wait() == 0, server.stderr
    assert "Stopped cleanly" in server.stderr
    assert stored_titles(server.settings, user) == ["Written during shutdown"]


def test_restart_on_the_same_port_right_after_a_stop_succeeds(
    server: LiveServer, server_settings: dict[str, str], http: httpx.Client
) -> None:
    # Connections the server closed first linger in TIME_WAIT on its port; they must not block a restart.
    for _ in range(3):
        assert get_closed_by_server(server.port, "/health").startswith(b"HTTP/1.1 200")
    assert server.stop() == 0, server.stderr

    with LiveServer(**server_settings, PORT=str(server.port)) as again:
        again.start()
        again.wait_ready()

        assert http.get(f"{again.url}/health").status_code == 200
        assert again.stop() == 0, again.stderr


# Several workers (WORKERS > 1)


@needs_ipv6
def test_workers_serve_both_addresses_and_stop_cleanly_on_sigterm(
    server_settings: dict[str, str], http: httpx.Client
) -> None:
    with LiveServer(**server_settings, WORKERS="2") as server:
        server.start()
        server.wait_for_output(f"{LISTENING}{server.url}", count=2, timeout=20)  # one line per worker
        # /ready answers from whichever worker is asked: wait for both workers' "Ready" (after the parent's).
        server.wait_for_output("Ready: ", count=3, timeout=20)
        user = new_user()
        auth = minted_bearer(server.settings, user)

        created = http.post(f"{server.url6}/api/{user}/tasks", json={"title": "From a worker"}, headers=auth)
        listed = http.get(f"{server.url}/api/{user}/tasks", headers=auth)
        status = server.stop()

        assert created.status_code == 201, created.text
        assert listed.json() == [created.json()]
        assert status == 0, server.stderr
        assert "Stopped cleanly" in server.stderr
        assert server.stderr.count(f"{LISTENING}{server.url6}") == 2
        assert "Warning" not in server.stderr  # e.g. Hypercorn's "`workers` has no affect when using serve"
        assert_no_traceback(server.stderr)


def test_workers_with_a_missing_database_exit_1_naming_it(
    server_settings: dict[str, str], postgres_admin_url: str
) -> None:
    base, _, _ = postgres_admin_url.rpartition("/")

    status, stderr = run_to_exit({**server_settings, "DATABASE_URL": f"{base}/no_such_db_xyz", "WORKERS": "2"})

    assert status == 1, stderr
    assert stderr.count("error DB_NOT_FOUND: database 'no_such_db_xyz' does not exist on ") == 1
    assert_no_traceback(stderr)


@pytest.fixture(scope="module")
def password_cluster() -> Iterator[PostgresCluster]:
    """A cluster of this module's own that asks role `app` (owner of database `todo`) for its password."""
    if not pgcluster.available():
        unavailable("initdb/pg_ctl not found")
    cluster = PostgresCluster(hba="local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
    cluster.start()
    cluster.psql(f"CREATE ROLE app LOGIN PASSWORD '{APP_PASSWORD}'")
    cluster.psql("CREATE DATABASE todo OWNER app")
    yield cluster
    cluster.remove()


def test_workers_whose_startup_fails_after_the_parents_exit_1_naming_the_cause_once(
    server_settings: dict[str, str], password_cluster: PostgresCluster
) -> None:
    url = password_cluster.url("todo", "app", APP_PASSWORD)
    with LiveServer(**{**server_settings, "DATABASE_URL": url, "WORKERS": "2"}) as server:
        server.start()
        server.wait_for_output("Ready: ", timeout=30)  # the parent connected and migrated; workers still spawn
        password_cluster.psql("ALTER ROLE app PASSWORD 'rotated-meanwhile'")  # so theirs is refused for good

        status = server.wait(timeout=30)  # a hang detector, not a speed test
        stderr = server.stderr

    assert status == 1, stderr
    cause = f"error DB_AUTH_FAILED: password authentication failed for user 'app' on 127.0.0.1:{password_cluster.port}"
    assert stderr.count(cause) == 1, stderr
    assert stderr.count("DB_AUTH_FAILED") == 1, stderr  # the cause once, as a single process prints it
    assert "Ready: " in stderr.rpartition(cause)[0]  # the parent's, before the workers failed
    assert APP_PASSWORD not in stderr
    assert_no_traceback(stderr)


def test_workers_stop_cleanly_on_sigterm_while_the_database_is_retried(server_settings: dict[str, str]) -> None:
    settings = {
        **server_settings,
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/todo",
        "DB_CONNECT_RETRY_SECONDS": "20",
        "WORKERS": "2",
    }
    with LiveServer(**settings) as server:
        server.start()
        server.wait_for_output("Database not ready (attempt 1, DB_CONNECTION_REFUSED")

        status = server.stop()

        assert status == 0, server.stderr
        assert "Stopped cleanly" in server.stderr
        assert "error DB_" not in server.stderr
        assert_no_traceback(server.stderr)


# Helpers for the signal tests


@dataclasses.dataclass
class SlowUpload:
    """A POST whose headers are sent at once and whose body arrives when told."""

    sock: socket.socket

    @classmethod
    def open(cls, server: LiveServer, path: str, headers: dict[str, str], body: bytes) -> SlowUpload:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        lines = [
            f"POST {path} HTTP/1.1",
            f"Host: 127.0.0.1:{server.port}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            "Connection: close",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return cls(sock)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self) -> tuple[int, Any]:
        response = HTTPResponse(self.sock)
        try:
            response.begin()
            return response.status, json.loads(response.read())
        finally:
            response.close()

    def close(self) -> None:
        self.sock.close()


def get_closed_by_server(port: int, path: str) -> bytes:
    """GET with `Connection: close`, read until the server hangs up, then close our end."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def wait_refused(host: str, port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                pass
        except ConnectionRefusedError:
            return
        time.sleep(0.05)
    raise AssertionError(f"{host}:{port} still accepts connections {timeout}s after the signal")


def stored_titles(settings: Settings, user: str) -> list[str]:
    async def query() -> list[str]:
        db = Database(settings)
        await db.connect()
        try:
            rows = await db.fetch_all("SELECT title FROM tasks WHERE user_id = :user ORDER BY id", {"user": user})
        finally:
            await db.disconnect()
        return [row["title"] for row in rows]

    return asyncio.run(query())


# Cannot start: one named line, exit status 1


def test_busy_port_exits_1_naming_the_holder_and_inv_free_port(server_settings: dict[str, str]) -> None:
    port = free_port()
    holder = hold_port(port, "127.0.0.1")
    try:
        status, stderr = run_to_exit({**server_settings, "PORT": str(port)})
    finally:
        stop_process(holder)

    assert status == 1, stderr
    assert f"error PORT_IN_USE: port {port} on 127.0.0.1 is in use by pid {holder.pid} (" in stderr
    assert "http.server" in stderr
    assert f"`inv free-port --port {port} --kill` ends it" in stderr
    assert_no_traceback(stderr)


@needs_ipv6
def test_port_busy_on_ipv6_only_exits_1_naming_the_ipv6_address(server_settings: dict[str, str]) -> None:
    port = free_port()
    holder = hold_port(port, "::1")
    try:
        status, stderr = run_to_exit({**server_settings, "PORT": str(port)})
    finally:
        stop_process(holder)

    assert status == 1, stderr
    assert f"error PORT_IN_USE: port {port} on ::1 is in use by pid {holder.pid} (" in stderr
    assert_no_traceback(stderr)


def test_host_not_on_this_machine_exits_1_with_listen_failed(server_settings: dict[str, str]) -> None:
    port = free_port()

    status, stderr = run_to_exit({**server_settings, "HOST": "192.0.2.1", "PORT": str(port)})

    assert status == 1, stderr
    assert f"error LISTEN_FAILED: Cannot listen on 192.0.2.1:{port}: " in stderr
    assert "set HOST to an address of this machine" in stderr
    assert_no_traceback(stderr)


def test_invalid_settings_exit_1_naming_every_bad_setting(server_settings: dict[str, str]) -> None:
    status, stderr = run_to_exit({**server_settings, "PORT": "abc", "LOG_LEVEL": "loud"})

    assert status == 1, stderr
    assert "error CONFIG_INVALID: 2 settings invalid:" in stderr
    assert "  - PORT is 'abc', not a whole number: set PORT to a number from 1 to 65535" in stderr
    assert "  - LOG_LEVEL is 'loud', not one of debug, info, warning, error, critical" in stderr
    assert_no_traceback(stderr)


def test_missing_postgres_database_exits_1_with_db_not_found_and_createdb(
    server_settings: dict[str, str], postgres_admin_url: str
) -> None:
    base, _, _ = postgres_admin_url.rpartition("/")
    missing = {**server_settings, "DATABASE_URL": f"{base}/no_such_db_xyz", "DB_CONNECT_RETRY_SECONDS": "20"}

    status, stderr = run_to_exit(missing)

    assert status == 1, stderr
    assert "error DB_NOT_FOUND: database 'no_such_db_xyz' does not exist on " in stderr
    assert "create it with `createdb no_such_db_xyz`" in stderr
    assert "retrying" not in stderr  # a missing database is permanent: no retries
    assert_no_traceback(stderr)


def test_refused_database_exits_1_with_db_connection_refused_after_retrying(server_settings: dict[str, str]) -> None:
    settings = {**server_settings, "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/todo"}
    started = time.monotonic()

    status, stderr = run_to_exit({**settings, "DB_CONNECT_RETRY_SECONDS": "1"})

    assert status == 1, stderr
    assert time.monotonic() - started >= 1
    assert "error DB_CONNECTION_REFUSED: nothing accepts connections on 127.0.0.1:1" in stderr
    assert len(re.findall(r"Database not ready \(attempt \d+, DB_CONNECTION_REFUSED", stderr)) >= 2
    assert_no_traceback(stderr)


def test_while_database_is_retried_health_is_200_ready_503_and_sigterm_exits_0(
    server_settings: dict[str, str], http: httpx.Client
) -> None:
    settings = {
        **server_settings,
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/todo",
        "DB_CONNECT_RETRY_SECONDS": "20",
    }
    with LiveServer(**settings) as server:
        server.start()
        server.wait_healthy()

        ready = http.get(f"{server.url}/ready")
        api = http.get(f"{server.url}/api/alice/tasks", headers=minted_bearer(server.settings, "alice"))
        status = server.stop(signal.SIGTERM)

        assert ready.status_code == 503
        assert ready.headers["retry-after"] == "2"
        assert ready.json() == {
            "status": "not_ready",
            "checks": [{"name": "database", "ok": False, "detail": "not connected to postgres@127.0.0.1:1/todo yet"}],
        }
        assert api.status_code == 503, api.text
        assert api.json()["code"] == "DATABASE_UNAVAILABLE"
        assert "retry-after" in api.headers
        assert status == 0, server.stderr
        assert "Stopped cleanly" in server.stderr
        assert "error DB_" not in server.stderr
        assert_no_traceback(server.stderr)
