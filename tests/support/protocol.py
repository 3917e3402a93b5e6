"""HTTP as the tests speak it: what our answers carry (problem+json, the Bearer
challenge), the header a request authenticates with, and HTTP/1.1 spoken by
hand on a raw socket.

The raw socket is for what httpx will not send or will not show: a request
framed two ways, a head that never ends, whether the server kept or closed
the connection.
"""

from __future__ import annotations

import re
import socket

from tests.support.live import LiveServer

PROBLEM = "application/problem+json"
CHALLENGE = 'Bearer realm="api"'
# How long a test waits for the server to hang up before calling it a hang.
PATIENCE = 10.0


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def connect(server: LiveServer, timeout: float = PATIENCE) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; a socket timeout here means it hung."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def read_response(sock: socket.socket) -> bytes:
    """One whole response (head and Content-Length body), without waiting for the connection to close."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
    while length and len(body) < int(length.group(1)) and (chunk := sock.recv(65536)):
        body += chunk
    return head + b"\r\n\r\n" + body


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_of(answer: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d{3})", answer)
    assert match, answer[:200]
    return int(match.group(1))


def then_health(server: LiveServer, request: bytes) -> tuple[bytes, bytes]:
    """The answer to `request`, then to GET /health sent after it on the same connection."""
    with connect(server) as sock:
        sock.sendall(request)
        first = read_response(sock)
        sock.sendall(request_head("GET", "/health", {}))
        return first, read_response(sock)
