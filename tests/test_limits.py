"""Limits and headers, against a real Hypercorn: what a hostile or broken client
meets before and after the app.

Body size (413, with and without Content-Length), header size (Hypercorn's
h11 limit: 431 and a closed connection, never a hang), JSON nesting depth,
the length of `q`, clients that stall halfway, and the headers every API
answer carries: nosniff, Cache-Control: no-store, no Server banner.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from backend.bodydeadline import BODY_DEADLINE
from backend.payloads import MAX_BODY_BYTES
from backend.schemas import QUERY_MAX
from backend.server import hypercorn_config
from backend.settings import Settings
from tests.support.live import LiveServer
from tests.support.protocol import (
    PATIENCE,
    PROBLEM,
    bearer,
    connect,
    read_response,
    read_until_closed,
    request_head,
    status_of,
    then_health,
)
from tests.support.tokens import Tokens

pytestmark = pytest.mark.live

_CONFIG = hypercorn_config(Settings(), [])
KEEP_ALIVE_TIMEOUT = float(_CONFIG.keep_alive_timeout)
READ_TIMEOUT = float(_CONFIG.read_timeout or 0)
HEADER_LIMIT = int(_CONFIG.h11_max_incomplete_size)


@pytest.fixture
def http(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=PATIENCE) as client:
        yield client


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code
    return problem


# -- body size ----------------------------------------------------------------------------------


def test_declared_body_over_the_limit_is_413_before_it_is_sent(live: LiveServer, tokens: Tokens) -> None:
    head = request_head(
        "POST",
        "/api/alice/tasks",
        {
            **bearer(tokens.signed("alice")),
            "Content-Type": "application/json",
            "Content-Length": str(100 * 1024 * 1024),
        },
    )
    with connect(live) as sock:
        sock.sendall(head)  # and not one byte of the 100 MB
        answer = read_response(sock)

    assert status_of(answer) == 413
    assert b"BODY_TOO_LARGE" in answer


def test_chunked_body_over_the_limit_is_413_without_content_length(http: httpx.Client, tokens: Tokens) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"title": "'
        for _ in range(4 * MAX_BODY_BYTES // 1024):
            yield b"x" * 1024
        yield b'"}'

    response = http.post(
        "/api/alice/tasks",
        content=chunks(),
        headers={**bearer(tokens.signed("alice")), "Content-Type": "application/json"},
    )

    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "BODY_TOO_LARGE")


def test_body_just_under_the_limit_is_read_and_validated(http: httpx.Client, tokens: Tokens) -> None:
    body = json.dumps({"title": "ok", "padding": "x" * (MAX_BODY_BYTES - 100)}).encode()
    assert len(body) <= MAX_BODY_BYTES

    response = http.post(
        "/api/alice/tasks",
        content=body,
        headers={**bearer(tokens.signed("alice")), "Content-Type": "application/json"},
    )

    problem = assert_problem(response, 422, "VALIDATION_FAILED")
    assert problem["errors"][0]["field"] == "padding"


# -- header size: Hypercorn's h11 limit ---------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"X-Big": "a" * 100_000},
        {f"X-Many-{n}": "a" for n in range(10_000)},
        {"Cookie": "session=" + "c" * 200_000},
    ],
    ids=["one-100kb-header", "10000-headers", "200kb-cookie"],
)
def test_oversized_headers_get_431_and_a_closed_connection(live: LiveServer, extra: dict[str, str]) -> None:
    with connect(live) as sock:
        # The server may answer and hang up before it has read everything.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request_head("GET", "/health", extra))
        answer = read_until_closed(sock)

    assert status_of(answer) == 431
    assert b"connection: close" in answer.lower()


def test_headers_over_the_limit_sent_in_pieces_get_431(live: LiveServer) -> None:
    # Arriving in small pieces, the request is incomplete for longer than h11's buffer allows.
    head = request_head("GET", "/health", {"X-Big": "a" * (2 * HEADER_LIMIT)})
    with connect(live) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for start in range(0, len(head), 1024):
                sock.sendall(head[start : start + 1024])
                time.sleep(0.001)
        answer = read_until_closed(sock)

    assert status_of(answer) == 431


def test_head_over_the_limit_that_completes_in_one_read_gets_431(live: LiveServer) -> None:
    # h11 measures a head only while it is incomplete: a small first piece, then the
    # rest at once (one read), used to be parsed whole and served.
    head = request_head("GET", "/health", {"X-Big": "a" * (HEADER_LIMIT + 8192)})
    with connect(live) as sock:
        sock.sendall(head[:1024])
        time.sleep(0.2)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head[1024:])
        answer = read_until_closed(sock)

    assert status_of(answer) == 431
    assert b"connection: close" in answer.lower()


def test_headers_well_within_the_limit_are_served(http: httpx.Client) -> None:
    response = http.get("/health", headers={"X-Padding": "a" * (HEADER_LIMIT // 2)})

    assert response.status_code == 200


# -- JSON depth and query length ----------------------------------------------------------------


@pytest.mark.parametrize("depth", [50, 900, 5_000, 30_000])
def test_deeply_nested_json_is_a_4xx_problem(http: httpx.Client, tokens: Tokens, depth: int) -> None:
    body = b'{"title": ' + b"[" * depth + b"]" * depth + b"}"
    assert len(body) <= MAX_BODY_BYTES

    response = http.post(
        "/api/alice/tasks",
        content=body,
        headers={**bearer(tokens.signed("alice")), "Content-Type": "application/json"},
    )

    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"] == PROBLEM


def test_q_at_the_limit_is_served_and_one_over_is_422(http: httpx.Client, tokens: Tokens) -> None:
    headers = bearer(tokens.signed("alice"))

    served = http.get("/api/alice/tasks", params={"q": "q" * QUERY_MAX}, headers=headers)
    refused = http.get("/api/alice/tasks", params={"q": "q" * (QUERY_MAX + 1)}, headers=headers)

    assert served.status_code == 200, served.text
    problem = assert_problem(refused, 422, "VALIDATION_FAILED")
    assert problem["errors"][0]["field"] == "q"


def test_q_of_50_kb_in_the_url_is_a_4xx(live: LiveServer, tokens: Tokens) -> None:
    head = request_head("GET", "/api/alice/tasks?q=" + "%25" * 50_000, bearer(tokens.signed("alice")))
    with connect(live) as sock:
        sock.sendall(head)
        answer = read_response(sock)

    # 422 from the app when the request arrives in one read, 431 from h11 when it arrives in pieces.
    assert status_of(answer) in (422, 431), answer[:300]


# -- clients that stall -------------------------------------------------------------------------


def test_client_that_stalls_in_the_headers_is_cut_off(live: LiveServer) -> None:
    with connect(live, timeout=KEEP_ALIVE_TIMEOUT + PATIENCE) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Half: ")
        answer = read_until_closed(sock)

    # Hypercorn's idle timer (keep_alive_timeout) closes it without a word.
    assert answer == b""


def test_client_that_stalls_in_the_body_is_cut_off(live: LiveServer, tokens: Tokens) -> None:
    head = request_head(
        "POST",
        "/api/alice/tasks",
        {
            **bearer(tokens.signed("alice")),
            "Content-Type": "application/json",
            "Content-Length": "100",
        },
    )
    with connect(live, timeout=READ_TIMEOUT + PATIENCE) as sock:
        sock.sendall(head + b'{"ti')
        read_until_closed(sock)

    assert "Traceback" not in live.stderr


def drip_until_answered(sock: socket.socket, give_up: float) -> bytes:
    """One body byte per socket timeout (well inside the read timeout) until the server answers; then the rest."""
    answer = b""
    while not answer and time.monotonic() < give_up:
        try:
            sock.sendall(b"x")
            answer = sock.recv(65536)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
    return answer + read_until_closed(sock) if answer else b""


def test_body_dripped_with_a_valid_token_is_cut_at_the_body_deadline(live: LiveServer, tokens: Tokens) -> None:
    # The read timeout restarts with every byte; the body deadline does not. Without a token the
    # 401 comes before the body is read (test_answer_before_the_body_is_read_says_connection_close).
    head = request_head(
        "POST",
        "/api/alice/tasks",
        {
            **bearer(tokens.signed("alice")),
            "Content-Type": "application/json",
            "Content-Length": "1000",
            "X-Request-ID": "dripped-body",
        },
    )
    with connect(live, timeout=READ_TIMEOUT / 2) as sock:
        sock.sendall(head + b'{"title": "')
        answer = drip_until_answered(sock, give_up=time.monotonic() + BODY_DEADLINE + READ_TIMEOUT + PATIENCE)

    assert status_of(answer) == 408, answer[:300]
    head_part, _, body = answer.partition(b"\r\n\r\n")
    assert b"\r\nconnection: close\r\n" in head_part.lower() + b"\r\n"
    problem = json.loads(body)
    assert problem["code"] == "BODY_TIMEOUT"
    assert problem["detail"] == (
        f"The request body did not arrive within {BODY_DEADLINE:g} seconds;"
        " send the whole body without pausing (a task is a few hundred bytes)"
    )
    live.wait_for_output("[dripped-body] POST /api/alice/tasks -> 408 BODY_TIMEOUT")
    assert "Traceback" not in live.stderr


def test_client_that_hangs_up_mid_body_is_logged_as_a_4xx_not_a_crash(live: LiveServer, tokens: Tokens) -> None:
    head = request_head(
        "POST",
        "/api/alice/tasks",
        {
            **bearer(tokens.signed("alice")),
            "Content-Type": "application/json",
            "Content-Length": "100",
            "X-Request-ID": "hang-up-mid-body",
        },
    )
    with connect(live) as sock:
        sock.sendall(head + b'{"ti')
        time.sleep(0.2)

    live.wait_for_output("[hang-up-mid-body] POST /api/alice/tasks -> 400 INVALID_JSON: The client disconnected")
    assert "Traceback" not in live.stderr
    assert "Unhandled error" not in live.stderr


# -- connections: an answer given before the body was read ends the connection, and says so -----


@pytest.mark.parametrize("user", ["", "forged", "bob"], ids=["no-token", "forged-token", "other-user"])
def test_answer_before_the_body_is_read_says_connection_close(live: LiveServer, tokens: Tokens, user: str) -> None:
    headers = {"Content-Type": "application/json", "Content-Length": "20"}
    if user:
        headers["Authorization"] = f"Bearer {tokens.signed(user) if user == 'bob' else 'forged.token.here'}"
    with connect(live) as sock:
        sock.sendall(request_head("POST", "/api/alice/tasks", headers))  # the 20 bytes of body never come
        answer = read_response(sock)
        rest = read_until_closed(sock)

    assert status_of(answer) in (401, 403), answer[:300]
    assert b"\r\nconnection: close\r\n" in answer.lower()
    assert rest == b""  # and the server did close it


def test_connection_is_kept_for_the_next_request_when_the_body_was_read(live: LiveServer, tokens: Tokens) -> None:
    body = b'{"title": "kept alive"}'
    auth = {**bearer(tokens.signed("alice")), "Content-Type": "application/json"}
    first = request_head("POST", "/api/alice/tasks", {**auth, "Content-Length": str(len(body))}) + body
    created, health = then_health(live, first)

    assert status_of(created) == 201, created[:300]
    assert b"connection: close" not in created.lower()
    assert status_of(health) == 200


# -- headers on every answer --------------------------------------------------------------------


def test_every_kind_of_answer_has_nosniff_no_store_and_no_banner(http: httpx.Client, tokens: Tokens) -> None:
    auth = bearer(tokens.signed("alice"))
    created = http.post("/api/alice/tasks", json={"title": "headers"}, headers=auth)
    answers = [
        created,
        http.get("/api/alice/tasks", headers=auth),
        http.get(created.headers["location"], headers=auth),
        http.get("/api/me", headers=auth),
        http.get("/api/me"),  # 401
        http.get("/api/bob/tasks", headers=auth),  # 403
        http.get("/api/alice/tasks/999999999", headers=auth),  # 404
        http.put("/api/alice/tasks", headers=auth),  # 405
        http.post("/api/alice/tasks", content=b"{", headers={**auth, "Content-Type": "application/json"}),  # 400
        http.post("/api/alice/tasks", json={}, headers=auth),  # 422
        http.delete(created.headers["location"], headers=auth),  # 204
        http.get("/health"),
        http.get("/ready"),
        http.get("/openapi.json"),
    ]

    assert sorted({answer.status_code for answer in answers}) == [200, 201, 204, 400, 401, 403, 404, 405, 422]
    for answer in answers:
        where = f"{answer.request.method} {answer.request.url.path} -> {answer.status_code}"
        assert answer.headers["x-content-type-options"] == "nosniff", where
        assert answer.headers["cache-control"] == "no-store", where
        assert "server" not in answer.headers, where
        for value in answer.headers.values():
            assert not re.search(r"hypercorn|starlette|uvicorn|python", value, re.IGNORECASE), (where, value)
