"""HTTP/1.1 only on the plain port, against a real Hypercorn with a real HTTP/2 client (`h2`).

Hypercorn 0.18 would switch a cleartext connection to HTTP/2 on the
`PRI * HTTP/2.0` preface or on `Upgrade: h2c`, and its HTTP/2 there held
connections and memory (issue 14). backend/http1.py keeps every plain
connection in HTTP/1.1: the preface gets GOAWAY HTTP_1_1_REQUIRED and a
closed connection, `Upgrade: h2c` is ignored. Also here: a request framed by
both Content-Length and Transfer-Encoding gets its connection closed after
the answer (RFC 9112 section 6.3).
"""

from __future__ import annotations

import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import httpx
import psutil
import pytest

from backend import http1
from tests.support.jwks_server import JWKSServer
from tests.support.live import LiveServer
from tests.support.protocol import (
    PATIENCE,
    bearer,
    connect,
    read_response,
    read_until_closed,
    request_head,
    status_of,
    then_health,
)
from tests.support.tokens import AUTH_URL, Tokens

pytestmark = pytest.mark.live

GET_HEALTH = [(":method", "GET"), (":path", "/health"), (":scheme", "http"), (":authority", "test")]


class H2Client:
    """A real HTTP/2 client (the `h2` package) on a plain socket, speaking first (prior knowledge)."""

    def __init__(self, server: LiveServer, **settings: int) -> None:
        self.sock = connect(server)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(
                {getattr(h2.settings.SettingCodes, name): value for name, value in settings.items()}
            )
        self.events: list[h2.events.Event] = []
        self.reset = False

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def flush(self) -> None:
        """Send what the client has queued; a server that already closed is not an error here."""
        try:
            self.sock.sendall(self.conn.data_to_send())
        except (BrokenPipeError, ConnectionResetError):
            self.reset = True

    def read_until_closed(self) -> None:
        """Every frame until the server closes; a timeout means it held the connection."""
        try:
            while not self.reset and (data := self.sock.recv(65536)):
                self._receive(data)
        except ConnectionResetError:
            self.reset = True
        except TimeoutError:
            pytest.fail(f"the server held an HTTP/2 connection open for {PATIENCE}s: {self.events}")

    def read_until(self, *kinds: type[h2.events.Event]) -> None:
        """Frames until one of `kinds` arrives or the server closes."""
        try:
            while not any(isinstance(event, kinds) for event in self.events) and (data := self.sock.recv(65536)):
                self._receive(data)
        except ConnectionResetError:
            self.reset = True

    def _receive(self, data: bytes) -> None:
        try:
            self.events += self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.reset = True  # frames after GOAWAY: the server's side is over either way
        self.flush()

    @property
    def terminated(self) -> bool:
        return self.reset or any(isinstance(event, h2.events.ConnectionTerminated) for event in self.events)

    def close(self) -> None:
        self.sock.close()


def refused(client: H2Client) -> bool:
    """The server said "use HTTP/1.1" (GOAWAY HTTP_1_1_REQUIRED) and answered nothing, or it cut the connection."""
    terminated = [event for event in client.events if isinstance(event, h2.events.ConnectionTerminated)]
    answered = [event for event in client.events if isinstance(event, h2.events.ResponseReceived)]
    if answered:
        return False
    return client.reset or (
        len(terminated) == 1
        and terminated[0].error_code == h2.errors.ErrorCodes.HTTP_1_1_REQUIRED
        and terminated[0].last_stream_id == 0
    )


def held_by_server(server: LiveServer, client_port: int) -> bool:
    """Whether the server process still has a socket for the connection from `client_port`."""
    connections = psutil.Process(server.pid).net_connections(kind="tcp")
    return any(c.raddr and c.raddr.port == client_port for c in connections)


def assert_released(server: LiveServer, client_port: int) -> None:
    deadline = time.monotonic() + PATIENCE
    while held_by_server(server, client_port):
        assert time.monotonic() < deadline, f"the server still holds the connection from port {client_port}"
        time.sleep(0.05)


def assert_quiet_log(server: LiveServer, marker: str) -> None:
    """No traceback in the log, checked after a later request's line shows the log has caught up."""
    httpx.get(f"{server.url}/api/me", headers={"X-Request-ID": marker}, timeout=PATIENCE)
    server.wait_for_output(f"[{marker}] GET /api/me -> 401")
    assert "Traceback" not in server.stderr, server.stderr
    assert "KeyError" not in server.stderr, server.stderr


# -- HTTP/2 with prior knowledge: refused, closed --------------------------------------------------


def test_http2_preface_gets_goaway_http_1_1_required_and_a_closed_connection(live: LiveServer) -> None:
    client = H2Client(live)
    client.conn.send_headers(1, GET_HEALTH, end_stream=True)
    client.flush()
    client.read_until_closed()
    port = client.port
    client.close()

    assert refused(client), client.events
    terminated = next(event for event in client.events if isinstance(event, h2.events.ConnectionTerminated))
    assert terminated.additional_data == http1.REFUSAL_MESSAGE
    assert_released(live, port)
    assert "HTTP/2 refused" in live.stderr


def test_burst_of_headers_and_resets_then_close_leaves_no_connection_held(live: LiveServer) -> None:
    client = H2Client(live)
    for _ in range(2000):  # past the 1000 streams Hypercorn takes at once, without a WINDOW_UPDATE
        stream_id = client.conn.get_next_available_stream_id()
        client.conn.send_headers(stream_id, GET_HEALTH, end_stream=True)
        client.conn.reset_stream(stream_id)
    client.flush()
    port = client.port
    client.close()

    assert_released(live, port)
    assert_quiet_log(live, "after-h2-burst")


def test_client_with_a_zero_flow_control_window_is_not_held(live: LiveServer) -> None:
    client = H2Client(live, INITIAL_WINDOW_SIZE=0)
    client.conn.send_headers(1, [*GET_HEALTH[:1], (":path", "/openapi.json"), *GET_HEALTH[2:]], end_stream=True)
    client.flush()
    client.read_until_closed()  # an idle HTTP/1.1 connection is closed after 5 s; this was held for ever
    port = client.port
    client.close()

    assert refused(client), client.events
    assert_released(live, port)


@pytest.mark.parametrize(
    ("authorized", "length"), [(False, 40), (True, 100 * 1024)], ids=["401-no-token", "413-over-64KiB"]
)
def test_http2_post_answered_before_its_body_crashes_nothing(
    live: LiveServer, tokens: Tokens, authorized: bool, length: int
) -> None:
    headers = [
        (":method", "POST"),
        (":path", "/api/alice/tasks"),
        (":scheme", "http"),
        (":authority", "test"),
        ("content-type", "application/json"),
        ("content-length", str(length)),
    ]
    if authorized:
        headers.append(("authorization", f"Bearer {tokens.signed('alice')}"))
    client = H2Client(live)
    client.conn.send_headers(1, headers)
    client.flush()
    client.read_until(h2.events.ResponseReceived, h2.events.ConnectionTerminated)
    # The rest of the body, after the answer: what made Hypercorn's h2 raise KeyError.
    for _ in range(2):
        if client.terminated:
            break
        client.conn.send_data(1, b" " * 16000)
        client.flush()
        time.sleep(0.2)
    client.read_until_closed()
    client.close()

    assert refused(client), client.events
    assert_quiet_log(live, f"after-h2-post-{length}")


# -- Upgrade: h2c is ignored ------------------------------------------------------------------------


def h2c_upgrade_head(path: str, headers: dict[str, str] | None = None) -> bytes:
    """An HTTP/1.1 request asking to upgrade to HTTP/2, with the HTTP2-Settings a real h2 client sends."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    settings = conn.initiate_upgrade_connection().decode()
    upgrade = {"Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c", "HTTP2-Settings": settings}
    return request_head("GET", path, {**upgrade, **(headers or {})})


def test_upgrade_to_h2c_is_ignored_and_answered_in_http_1_1(live: LiveServer, tokens: Tokens) -> None:
    auth = bearer(tokens.signed("alice"))
    with connect(live) as sock:
        sock.sendall(h2c_upgrade_head("/health"))
        health = read_response(sock)
        sock.sendall(h2c_upgrade_head("/api/alice/tasks", auth))  # the connection is still HTTP/1.1
        tasks = read_response(sock)

    assert status_of(health) == 200, health[:300]
    assert health.endswith(b'{"status":"ok"}')
    assert b"upgrade" not in health.split(b"\r\n\r\n")[0].lower()
    assert status_of(tasks) == 200, tasks[:300]


def test_http2_preface_after_an_ignored_upgrade_is_refused(live: LiveServer) -> None:
    client = H2Client(live)
    preface = client.conn.data_to_send()
    with client.sock as sock:
        sock.sendall(h2c_upgrade_head("/health"))
        health = read_response(sock)
        sock.sendall(preface)
        client.read_until_closed()

    assert status_of(health) == 200
    assert refused(client), client.events


def test_workers_refuse_http2_too(database_url: str, jwks: JWKSServer) -> None:
    # Workers are processes spawned afresh: each must refuse HTTP/2 itself.
    settings = {
        "APP_ENV": "development",
        "DATABASE_URL": database_url,
        "BETTER_AUTH_URL": AUTH_URL,
        "BETTER_AUTH_JWKS_URL": jwks.url,
        "DB_CONNECT_RETRY_SECONDS": "0",
        "WORKERS": "2",
    }
    with LiveServer(**settings) as server:
        server.start()
        # The parent's "Ready", then each worker's, once the parent has handed the sockets over.
        server.wait_for_output("Ready: ", count=3, timeout=30)
        clients = [H2Client(server) for _ in range(4)]
        for client in clients:
            client.flush()
            client.read_until_closed()
            client.close()

        assert all(refused(client) for client in clients), [client.events for client in clients]
        assert "Traceback" not in server.stderr


# -- Content-Length with Transfer-Encoding: answered, then closed -----------------------------------


def test_request_with_content_length_and_transfer_encoding_gets_its_connection_closed(
    live: LiveServer, tokens: Tokens
) -> None:
    body = b'{"title": "framed by its chunks"}'
    head = request_head(
        "POST",
        "/api/alice/tasks",
        {
            **bearer(tokens.signed("alice")),
            "Content-Type": "application/json",
            "Content-Length": "4",
            "Transfer-Encoding": "chunked",
        },
    )
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    smuggled = request_head("GET", "/health", {})
    with connect(live) as sock:
        sock.sendall(head + chunked + smuggled)
        answer = read_response(sock) + read_until_closed(sock)

    assert status_of(answer) == 201, answer[:300]
    assert b'"title":"framed by its chunks"' in answer  # framed by Transfer-Encoding, as h11 does
    assert b"\r\nconnection: close\r\n" in answer.lower()
    assert answer.count(b"HTTP/1.1 ") == 1  # then closed: the request after it was never answered


def test_request_with_transfer_encoding_alone_keeps_its_connection(live: LiveServer, tokens: Tokens) -> None:
    body = b'{"title": "chunked alone"}'
    head = request_head(
        "POST",
        "/api/alice/tasks",
        {
            **bearer(tokens.signed("alice")),
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked",
        },
    )
    created, health = then_health(live, head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))

    assert status_of(created) == 201, created[:300]
    assert b"connection: close" not in created.lower()
    assert status_of(health) == 200
