"""The body deadline on its own (`BodyReader`), with an ASGI receive that stalls on cue.

The same deadline against a real server, a real socket and a valid token:
tests/test_limits.py (`test_body_dripped_with_a_valid_token_is_cut_at_the_body_deadline`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from starlette.types import Message, Receive

from backend.bodydeadline import BodyReader
from backend.errors import RequestTimeoutError

DEADLINE = 0.2


def client(*messages: Message) -> Receive:
    """An ASGI receive giving `messages` at once, then nothing (a client that stalls)."""
    queue: asyncio.Queue[Message] = asyncio.Queue()
    for message in messages:
        queue.put_nowait(message)
    return queue.get


def reading(count: int, received: list[Message]) -> Callable[[Receive], Awaitable[None]]:
    """An app that reads `count` messages of a request with a body into `received`, through a BodyReader."""

    async def app(receive: Receive) -> None:
        body = BodyReader(receive, has_body=True, seconds=DEADLINE)
        for _ in range(count):
            received.append(await body())

    return app


def chunk(data: bytes, *, more: bool) -> Message:
    return {"type": "http.request", "body": data, "more_body": more}


async def test_piece_of_body_after_the_deadline_is_a_408() -> None:
    received: list[Message] = []
    queue: asyncio.Queue[Message] = asyncio.Queue()
    queue.put_nowait(chunk(b"{", more=True))
    asyncio.get_running_loop().call_later(DEADLINE * 1.5, queue.put_nowait, chunk(b'"ti', more=True))

    with pytest.raises(RequestTimeoutError) as raised:
        await reading(3, received)(queue.get)

    assert [message["body"] for message in received] == [b"{"]
    assert raised.value.status == 408
    assert raised.value.code == "BODY_TIMEOUT"


async def test_deadline_counts_the_whole_body_not_each_read() -> None:
    received: list[Message] = []
    queue: asyncio.Queue[Message] = asyncio.Queue()

    async def drip() -> None:  # each piece well within the deadline, the body as a whole past it
        for _ in range(10):
            await asyncio.sleep(DEADLINE / 4)
            queue.put_nowait(chunk(b" ", more=True))

    dripping = asyncio.create_task(drip())
    with pytest.raises(RequestTimeoutError):
        await reading(10, received)(queue.get)
    dripping.cancel()

    assert 2 <= len(received) <= 4


async def test_body_within_the_deadline_is_read_whole() -> None:
    received: list[Message] = []

    await reading(3, received)(client(chunk(b"{", more=True), chunk(b"}", more=True), chunk(b"", more=False)))

    assert [message["body"] for message in received] == [b"{", b"}", b""]


async def test_complete_body_is_not_cut_and_a_later_read_may_wait_past_the_deadline() -> None:
    received: list[Message] = []
    queue: asyncio.Queue[Message] = asyncio.Queue()
    queue.put_nowait(chunk(b'{"title": "x"}', more=False))
    asyncio.get_running_loop().call_later(DEADLINE * 2, queue.put_nowait, {"type": "http.disconnect"})

    await reading(2, received)(queue.get)

    assert [message["type"] for message in received] == ["http.request", "http.disconnect"]


async def test_body_read_to_its_end_is_complete_and_a_request_without_one_is_from_the_start() -> None:
    body = BodyReader(client(chunk(b"{", more=True), chunk(b"}", more=False)), has_body=True, seconds=DEADLINE)
    without = BodyReader(client(), has_body=False, seconds=DEADLINE)

    assert not body.complete
    await body()
    assert not body.complete
    await body()
    assert body.complete
    assert without.complete
