"""A small asyncio TCP proxy in front of a database: delay, outages, and counted round trips.

It runs in the test's event loop and forwards bytes as they are (TLS passes
through untouched), so it can stand in front of PostgreSQL or PgBouncer alike:

- `delay`: seconds added to every chunk in each direction (a far-away or
  throttled database); order is kept.
- `connect_delay`: seconds a new connection waits before it is passed on (a
  database waking from a suspend: accepted at once, answered later).
- `refuse()` / `restore()`: new connections are closed at once; `cut()` closes
  every open one (a network outage, a restarted pooler).
- `round_trips`: how many times a client spoke after the server had (each
  request/response turn of the protocol, TLS records included); `replies`
  waits for server answers, so a test can act between two round trips.

No netem, no root: the faults are in the bytes we pass on or hold back.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable


class TCPProxy:
    """`async with TCPProxy(port) as proxy`: listens on 127.0.0.1:`proxy.port`, forwards to `port`."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.delay = 0.0
        self.connect_delay = 0.0
        self.refusing = False
        self.round_trips = 0
        self.replies = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._replied = asyncio.Condition()
        self.port = 0

    async def start(self) -> TCPProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        sock: socket.socket = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])
        return self

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> TCPProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def refuse(self) -> None:
        """New connections are closed as soon as they arrive."""
        self.refusing = True

    def restore(self) -> None:
        self.refusing = False

    def cut(self) -> None:
        """Close every open connection at once, both ways."""
        for link in list(self._links):
            link.close()

    def reset_counts(self) -> None:
        self.round_trips = 0
        self.replies = 0

    async def wait_replies(self, count: int, within: float = 30.0) -> None:
        """Return once the server side has answered `count` times since the last `reset_counts()`."""
        async with asyncio.timeout(within), self._replied:
            await self._replied.wait_for(lambda: self.replies >= count)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.close()
            return
        self.connections += 1
        link = _Link(self, writer)
        self._links.add(link)
        try:
            if self.connect_delay:
                await asyncio.sleep(self.connect_delay)
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                return
            link.upstream = upstream_writer
            await asyncio.gather(
                self._pump(reader, upstream_writer, link, self._client_spoke),
                self._pump(upstream_reader, writer, link, self._server_spoke),
            )
        finally:
            link.close()
            self._links.discard(link)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: _Link,
        observe: Callable[[_Link], None],
    ) -> None:
        pending: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sender = asyncio.create_task(self._send_later(pending, writer))
        try:
            while chunk := await reader.read(65536):
                observe(link)
                pending.put_nowait((time.monotonic() + self.delay, chunk))
        except OSError:
            pass
        finally:
            pending.put_nowait((0.0, b""))
            with contextlib.suppress(OSError):
                await sender
            link.close()

    async def _send_later(self, pending: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter) -> None:
        while True:
            due, chunk = await pending.get()
            if not chunk:
                return
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()

    def _client_spoke(self, link: _Link) -> None:
        if link.server_spoke_last:
            self.round_trips += 1
        link.server_spoke_last = False

    def _server_spoke(self, link: _Link) -> None:
        if not link.server_spoke_last:
            self.replies += 1
            asyncio.get_running_loop().create_task(self._notify())
        link.server_spoke_last = True

    async def _notify(self) -> None:
        async with self._replied:
            self._replied.notify_all()


class _Link:
    """One client connection and its upstream twin."""

    def __init__(self, proxy: TCPProxy, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        # The protocol starts with the client speaking: that first turn counts too.
        self.server_spoke_last = True

    def close(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None and not writer.is_closing():
                writer.close()
