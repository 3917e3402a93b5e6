"""HTTP/1.1 only on the plain port: Hypercorn's h11 protocol without its switches to HTTP/2.

Hypercorn 0.18 turns a cleartext connection into HTTP/2 on `Upgrade: h2c` or
on the `PRI * HTTP/2.0` preface of a client that assumes HTTP/2, and no
setting stops it. Its HTTP/2 there has no limits that hold (issue 14): a
burst of streams crashes the connection's reader, a client that sets its
flow-control window to 0 is held for ever, and a POST answered before its
body (a 401, a 413) ends in a KeyError traceback. HTTP/2 belongs behind a
TLS-terminating proxy (docs/security.md). So on a plain socket:

- `Upgrade: h2c` is ignored, as RFC 9110 section 7.8 lets a server do: the
  request is answered in HTTP/1.1 and the connection stays HTTP/1.1.
- The HTTP/2 preface is answered in HTTP/2's own words, an empty SETTINGS
  then GOAWAY with HTTP_1_1_REQUIRED (RFC 9113 sections 3.4 and 7), and the
  connection is closed.
- A request with both Content-Length and Transfer-Encoding is answered (h11
  frames it by Transfer-Encoding) with `Connection: close`, and the
  connection closes: the two disagreeing is how a request is smuggled past a
  proxy, and RFC 9112 sections 6.1 and 6.3 require the close.
- A request head larger than `h11_max_incomplete_size` is answered 431 and
  the connection closed. h11 checks that size only while a head is still
  incomplete, so a head that grew past it in one read (up to 64 KiB more)
  got through; the limit is checked here again on every complete head.

Hypercorn has no option to choose the protocol: its ProtocolWrapper builds
`hypercorn.protocol.H11Protocol` for every connection without TLS ALPN "h2".
`serve_http1_only()` points that name at `_HTTP1Only`, a subclass overriding
the methods involved. It first checks that Hypercorn is still built the way
the subclass expects and refuses to start when not: an upgrade that moves
the switch must stop the server with a named cause, not quietly bring
HTTP/2 back.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import sys
from importlib.metadata import version
from typing import TYPE_CHECKING, Final

from hypercorn.events import Closed, Event, RawData
from hypercorn.protocol import ProtocolWrapper
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.events import Response
from hypercorn.protocol.h11 import H11Protocol

from backend.errors import AppError

if TYPE_CHECKING:
    import h11

logger = logging.getLogger(__name__)

REFUSAL_MESSAGE: Final = b"HTTP/2 without TLS is off on this server; use HTTP/1.1, or HTTPS through its proxy"


def _frame(kind: int, payload: bytes) -> bytes:
    """An HTTP/2 frame on stream 0 without flags (RFC 9113 section 4.1)."""
    return len(payload).to_bytes(3, "big") + bytes([kind, 0]) + bytes(4) + payload


_SETTINGS, _GOAWAY, _HTTP_1_1_REQUIRED = 0x4, 0x7, 0xD
# GOAWAY's payload: the last stream processed (none: 0), the error code, then debug data for humans.
_USE_HTTP1: Final = _frame(_SETTINGS, b"") + _frame(
    _GOAWAY, bytes(4) + _HTTP_1_1_REQUIRED.to_bytes(4, "big") + REFUSAL_MESSAGE
)


# The names ProtocolWrapper looks `H11Protocol` up in when it builds a connection's protocol.
_WRAPPER_NAMES: Final = vars(sys.modules[ProtocolWrapper.__module__])


class HypercornUnsupportedError(AppError):
    code = "HYPERCORN_UNSUPPORTED"


class _HTTP2PrefaceError(Exception):
    """Raised from `_check_protocol` to leave Hypercorn's request handling at the HTTP/2 preface."""


class _HeadTooLargeError(Exception):
    """Raised from `_check_protocol` to answer a request head over the size limit with 431."""


class _HTTP1Only(H11Protocol):
    _refused = False
    _framing_ambiguous = False

    async def handle(self, event: Event) -> None:
        if self._refused:
            return  # closing: whatever the client still sends is dropped
        try:
            await super().handle(event)
        except _HTTP2PrefaceError:
            self._refused = True
            logger.info("HTTP/2 refused from %s: without TLS this server speaks HTTP/1.1 only", _shown(self.client))
            await self.send(RawData(data=_USE_HTTP1))
            await self.send(Closed())
        except _HeadTooLargeError:
            self._refused = True
            await self._send_error_response(431)
            await self.send(Closed())

    async def _check_protocol(self, event: h11.Request) -> None:
        # Called by Hypercorn for each request head, before the app sees it; Hypercorn's own
        # version of this method is the one that switches to HTTP/2.
        if (event.method, event.target, event.http_version) == (b"PRI", b"*", b"2.0"):
            raise _HTTP2PrefaceError
        if _head_size(event) > self.config.h11_max_incomplete_size:
            raise _HeadTooLargeError
        names = {name for name, _ in event.headers}  # h11 lower-cases header names
        self._framing_ambiguous = {b"content-length", b"transfer-encoding"} <= names

    async def stream_send(self, event: StreamEvent) -> None:
        if self._framing_ambiguous and isinstance(event, Response) and not _says_close(event.headers):
            # h11 ends the connection after a response that says `Connection: close`.
            event = dataclasses.replace(event, headers=[*event.headers, (b"connection", b"close")])
        await super().stream_send(event)


def _head_size(event: h11.Request) -> int:
    """The request head's size on the wire, give or take the spaces h11 strips."""
    line = len(event.method) + len(event.target) + len(b"  HTTP/1.1\r\n\r\n")
    return line + sum(len(name) + len(value) + len(b": \r\n") for name, value in event.headers)


def _says_close(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(name.lower() == b"connection" and b"close" in value.lower() for name, value in headers)


def _shown(address: tuple[str, int] | None) -> str:
    return "an unknown address" if address is None else f"{address[0]}:{address[1]}"


def serve_http1_only() -> None:
    """Make every Hypercorn connection in this process HTTP/1.1 only; raise `HypercornUnsupportedError` if it cannot."""
    if _WRAPPER_NAMES.get("H11Protocol") is _HTTP1Only:
        return
    problem = hypercorn_mismatch()
    if problem:
        raise HypercornUnsupportedError(
            f"Hypercorn {version('hypercorn')} is not built the way backend/http1.py expects ({problem}),"
            " so HTTP/2 without TLS cannot be kept off",
            "Install the Hypercorn version requirements.txt pins (`pip install -r requirements.txt`),"
            " or adapt backend/http1.py to this one",
        )
    _WRAPPER_NAMES["H11Protocol"] = _HTTP1Only


def hypercorn_mismatch() -> str | None:
    """What in Hypercorn no longer matches what `_HTTP1Only` overrides, or None."""
    if _WRAPPER_NAMES.get("H11Protocol") not in (H11Protocol, _HTTP1Only):
        return "hypercorn.protocol.H11Protocol is not hypercorn.protocol.h11.H11Protocol"
    if "H11Protocol" not in _names_used(ProtocolWrapper.__init__):
        return "ProtocolWrapper no longer builds hypercorn.protocol.H11Protocol"
    if "_check_protocol" not in _names_used(H11Protocol._handle_events):
        return "H11Protocol._handle_events no longer calls _check_protocol"
    if not inspect.iscoroutinefunction(getattr(H11Protocol, "_send_error_response", None)):
        return "H11Protocol._send_error_response is gone"
    for name in ("handle", "_check_protocol", "stream_send"):
        method = getattr(H11Protocol, name, None)
        if not inspect.iscoroutinefunction(method) or list(inspect.signature(method).parameters) != ["self", "event"]:
            return f"H11Protocol.{name} is no longer `async def {name}(self, event)`"
    return None


def _names_used(function: object) -> tuple[str, ...]:
    """The global and attribute names a function's code refers to."""
    code = getattr(function, "__code__", None)
    return tuple(code.co_names) if code is not None else ()
