"""The body deadline on its own, with an ASGI receive that stalls on cue.

The same deadline against a real server, a real socket and a valid token:
tests/test_limits.py (`test_body_dripped_with_a_valid_token_is_cut_at_the_body_deadline`).
"""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message, Receive, Scope, Send

from backend.bodydeadline import BodyDeadline
from backend.errors import RequestTimeoutError

DEADLINE = 0.2
SCOPE: Scope = {"type": "http", "method": "POST", "path": "/api/alice/tasks", "headers": []}


def client(*messages: Message) -> Receive:
    """An ASGI receive giving `messages` at once, then nothing (a client that stalls)."""
    queue: asyncio.Queue[Message] = asyncio.Queue()
    for message in messages:
        queue.put_nowait(message)
    return queue.get


async def no_send(message: Message) -> None:
    raise AssertionError("the app under test never answers")


def reading(count: int, received: list[Message]) -> BodyDeadline:
    """BodyDeadline around an app that reads `count` messages into `received`."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for _ in range(count):
            received.append(await receive())

    return BodyDeadline(app, seconds=DEADLINE)


def chunk(data: bytes, *, more: bool) -> Message:
    return {"type": "http.request", "body": data, "more_body": more}


async def test_piece_of_body_after_the_deadline_is_a_408() -> None:
    received: list[Message] = []
    queue: asyncio.Queue[Message] = asyncio.Queue()
    queue.put_nowait(chunk(b"{", more=True))
    asyncio.get_running_loop().call_later(DEADLINE * 1.5, queue.put_nowait, chunk(b'"ti', more=True))

    with pytest.raises(RequestTimeoutError) as raised:
        await reading(3, received)(SCOPE, queue.get, no_send)

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
        await reading(10, received)(SCOPE, queue.get, no_send)
    dripping.cancel()

    assert 2 <= len(received) <= 4


async def test_body_within_the_deadline_is_read_whole() -> None:
    received: list[Message] = []

    await reading(3, received)(
        SCOPE, client(chunk(b"{", more=True), chunk(b"}", more=True), chunk(b"", more=False)), no_send
    )

    assert [message["body"] for message in received] == [b"{", b"}", b""]


async def test_complete_body_is_not_cut_and_a_later_read_may_wait_past_the_deadline() -> None:
    received: list[Message] = []
    queue: asyncio.Queue[Message] = asyncio.Queue()
    queue.put_nowait(chunk(b'{"title": "x"}', more=False))
    asyncio.get_running_loop().call_later(DEADLINE * 2, queue.put_nowait, {"type": "http.disconnect"})

    await reading(2, received)(SCOPE, queue.get, no_send)

    assert [message["type"] for message in received] == ["http.request", "http.disconnect"]


async def test_other_scopes_pass_through() -> None:
    received: list[Message] = []

    await reading(1, received)({"type": "lifespan"}, client({"type": "lifespan.startup"}), no_send)

    assert received == [{"type": "lifespan.startup"}]
