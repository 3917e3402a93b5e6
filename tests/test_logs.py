"""Log lines: one record is one line, and nothing a client sends can forge another (issue 14, item 4).

The formatter is tested on its own, then a real server's stderr is read after
requests that carry newlines, terminal escapes and other control characters
in a JSON key, in the path, and in a lone surrogate.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import sys

import httpx
import pytest

from backend.logs import FORMAT, SafeFormatter, printable
from tests.support.live import LiveServer
from tests.support.tokens import Tokens

FORGED = "2099-01-01 00:00:00,000 ERROR   backend.auth [forged] admin token accepted for mallory"
# A record starts at column 0 with its timestamp; every other physical line is indented.
RECORD_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")
RAW_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202e]")


def formatted(message: str, *args: object, exc_info: bool = False) -> str:
    formatter = SafeFormatter(FORMAT)
    record = logging.LogRecord("backend.test", logging.INFO, __file__, 1, message, args, None)
    record.request_id = "-"
    if exc_info:
        record.exc_info = sys.exc_info()
    return formatter.format(record)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("zz\nline", "zz\\nline"),
        ("a\rb\tc", "a\\rb\\tc"),
        ("\x1b[2J\x07\x00\x7f", "\\x1b[2J\\x07\\x00\\x7f"),
        ("next\x85line", "next\\x85line"),
        ("para\u2028graph\u2029", "para\\u2028graph\\u2029"),
        ("\u202edesrever", "\\u202edesrever"),
        ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
        ("caf\u00e9 \u4e2d\u6587 \U0001f600 C:\\temp", "caf\u00e9 \u4e2d\u6587 \U0001f600 C:\\temp"),
    ],
)
def test_printable_escapes_controls_and_keeps_text(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_arguments_are_escaped_and_the_record_stays_one_line() -> None:
    line = formatted("%s %s -> %d %s: %s", "POST", "/api/a\x1b[31m", 422, "VALIDATION_FAILED", f"zz\n{FORGED}")

    assert "\n" not in line
    assert line.endswith(f"POST /api/a\\x1b[31m -> 422 VALIDATION_FAILED: zz\\n{FORGED}")


def test_objects_and_mappings_among_the_arguments_are_escaped() -> None:
    error = ValueError("bad\nvalue")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%(path)s %(n)d", ({"path": "a\nb", "n": 3},), None)
    record.request_id = "-"

    assert formatted("%s | %r | %r", error, error, "q\x07").endswith(
        "bad\\nvalue | ValueError('bad\\nvalue') | 'q\\x07'"
    )
    assert SafeFormatter("%(message)s").format(record) == "a\\nb 3"


def test_message_without_arguments_is_escaped_too() -> None:
    assert formatted(f"unexpected {FORGED}\nsecond").endswith(f"unexpected {FORGED}\\nsecond")


def test_traceback_lines_are_indented_and_escaped() -> None:
    try:
        raise KeyError(f"zz\n{FORGED}\x1b[0m")
    except KeyError:
        text = formatted("Unhandled error on %s %s", "GET", "/x", exc_info=True)

    first, *rest = text.split("\n")
    assert first.endswith("Unhandled error on GET /x")
    assert rest[0] == "  Traceback (most recent call last):"
    assert all(line.startswith(" ") for line in rest)
    assert not any(RECORD_START.match(line) for line in rest)
    assert "\x1b" not in text


# A real server's log


def raw_request(server: LiveServer, head: bytes, body: bytes = b"") -> bytes:
    """Send bytes exactly as given (no client normalises the target); the whole answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def log_lines(server: LiveServer, marker: str) -> list[str]:
    """The server's log from the request carrying `marker` (its request id) on; waits for that line."""
    server.wait_for_output(f"[{marker}]")
    log = server.stderr
    start = log.rfind("\n", 0, log.index(f"[{marker}]")) + 1
    return log[start:].split("\n")


def assert_one_line_per_record(lines: list[str]) -> None:
    for line in lines:
        assert not RAW_CONTROLS.search(line), repr(line)
        assert line == "" or RECORD_START.match(line) or line.startswith(" "), repr(line)
        assert not line.startswith("2099-01-01"), repr(line)


def test_unknown_json_key_with_a_newline_cannot_forge_a_log_line(live: LiveServer, tokens: Tokens) -> None:
    body = json.dumps({"title": "x", f"zz\n{FORGED}": 1})
    headers = {**tokens.headers("alice"), "Content-Type": "application/json", "X-Request-ID": "inject-key"}

    response = httpx.post(f"{live.url}/api/alice/tasks", content=body, headers=headers, timeout=10)

    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {"field": f"zz\\n{FORGED}", "location": "body", "message": "is not a known field"}
    ]
    lines = log_lines(live, "inject-key")
    assert_one_line_per_record(lines)
    assert f"[inject-key] POST /api/alice/tasks -> 422 VALIDATION_FAILED: zz\\n{FORGED}: is not a known field" in (
        "\n".join(lines)
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/{}/tasks"), ("PUT", "/api/{}/tasks/1"), ("PATCH", "/api/{}/tasks/1/complete")],
)
def test_control_characters_in_the_path_reach_the_log_escaped(live: LiveServer, method: str, path: str) -> None:
    marker = f"inject-path-{method.lower()}"
    target = path.format("alice%1B%5B2J%07%00%7F%C2%85%E2%80%A8")
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: {marker}\r\n"
        "Content-Length: 0\r\nConnection: close\r\n\r\n"
    ).encode()

    answer = raw_request(live, head)

    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
    lines = log_lines(live, marker)
    assert_one_line_per_record(lines)
    shown = path.format("alice\\x1b[2J\\x07\\x00\\x7f\\x85\\u2028")
    assert f"[{marker}] {method} {shown} -> 401 TOKEN_MISSING" in "\n".join(lines)


def test_terminal_escapes_and_a_forged_line_in_the_path_are_logged_escaped(live: LiveServer) -> None:
    forged = FORGED.replace(" ", "%20").encode()
    head = (
        b"GET /api/%1B%5D0%3Bpwned%07%1B%5B2K%0Dalice%0A" + forged + b"/tasks HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\nX-Request-ID: inject-get\r\nConnection: close\r\n\r\n"
    )

    answer = raw_request(live, head)

    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
    lines = log_lines(live, "inject-get")
    assert_one_line_per_record(lines)
    assert f"[inject-get] GET /api/\\x1b]0;pwned\\x07\\x1b[2K\\ralice\\n{FORGED}/tasks -> 401" in "\n".join(lines)


@pytest.mark.parametrize(("method", "path"), [("POST", "/api/alice/tasks"), ("PUT", "/api/alice/tasks/1")])
def test_lone_surrogate_key_is_a_422_logged_escaped_without_a_traceback(
    live: LiveServer, tokens: Tokens, method: str, path: str
) -> None:
    marker = f"surrogate-{method.lower()}"
    headers = {**tokens.headers("alice"), "Content-Type": "application/json", "X-Request-ID": marker}

    response = httpx.request(method, f"{live.url}{path}", content=b'{"title":"x","\\ud800":1}', headers=headers)

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "VALIDATION_FAILED"
    lines = log_lines(live, marker)
    assert_one_line_per_record(lines)
    assert f"[{marker}] {method} {path} -> 422 VALIDATION_FAILED: \\ud800: is not a known field" in "\n".join(lines)
    assert "Traceback" not in live.stderr
    assert "Logging error" not in live.stderr
