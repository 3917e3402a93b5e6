"""What a request cut at the graceful timeout sees, and what the log does not.

On SIGTERM Hypercorn stops accepting and waits GRACEFUL_TIMEOUT seconds for
the requests in flight; then it cancels them. Left alone, a cancelled request
gets Hypercorn's bare 500 with an empty body; `answer_cut_request` answers
it as the contract has it instead: 503 problem+json with `Retry-After`, so a
client or load balancer retries elsewhere. The statement the request was
waiting on is rolled back by PostgreSQL when its connection closes.

Before Python 3.12.2 each such cancellation also logs a traceback from
asyncio's own stream callback (CPython gh-113538): `quiet_cancelled_callbacks`
drops exactly that noise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.types import Receive, Scope, Send

from backend.errors import ServiceUnavailableError, problem_response

logger = logging.getLogger(__name__)

_CUT = ServiceUnavailableError(
    "The server is shutting down and could not finish this request; retry it", code="SHUTTING_DOWN"
)


async def answer_cut_request(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer 503 SHUTTING_DOWN for a request cancelled before its answer started (backend/middleware.py)."""
    logger.warning("%s %s cut at the graceful timeout -> 503 SHUTTING_DOWN", scope["method"], scope["path"])
    response = problem_response(_CUT.status, _CUT.code, _CUT.detail, headers=_CUT.headers)
    # The client may be gone already (a dropped connection is cancelled too).
    with contextlib.suppress(Exception):
        await response(scope, receive, send)


def quiet_cancelled_callbacks(loop: asyncio.AbstractEventLoop) -> None:
    """Stop the event loop logging a CancelledError raised by a done-callback (never an error)."""
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), asyncio.CancelledError):
            return  # a cancelled connection task, not an error (CPython gh-113538)
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
