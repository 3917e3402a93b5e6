"""The exception hierarchy, and its rendering as RFC 9457 problem+json.

    AppError                      a failure a user can cause: raises a `Problem` (backend/problems.py)
    ├── SettingsError             CONFIG_INVALID: every bad setting at once
    ├── DatabaseURLError          DATABASE_URL_INVALID
    ├── PortInUseError            PORT_IN_USE, PORT_EXCLUDED (backend/diagnostics/port_check.py)
    ├── DatabaseUnreachableError  DB_*: connecting failed, classified (backend/dberrors.py)
    ├── ProviderUnavailableError  AUTH_JWKS_*: the key set could not be read (backend/keyset.py)
    └── ApiError                  answered to an HTTP client as problem+json
        ├── MalformedJSONError       400 INVALID_JSON
        ├── UnauthorizedError        401 TOKEN_MISSING / TOKEN_INVALID / TOKEN_EXPIRED
        ├── ForbiddenError           403 USER_MISMATCH
        ├── NotFoundError            404 TASK_NOT_FOUND / NOT_FOUND
        ├── RequestTimeoutError      408 BODY_TIMEOUT
        ├── PayloadTooLargeError     413 BODY_TOO_LARGE
        ├── UnsupportedMediaTypeError 415 UNSUPPORTED_MEDIA_TYPE
        ├── ValidationFailedError    422 VALIDATION_FAILED
        └── ServiceUnavailableError  503 DATABASE_UNAVAILABLE / AUTH_PROVIDER_UNAVAILABLE

Library code raises these; the entry points (the HTTP handlers here, the
server's main, the invoke tasks) turn them into a response or a line and an
exit status (`report_line`). Every code is explained in docs/troubleshooting.md.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from backend.logs import REQUEST_ID
from backend.problems import Problem, ReadsProblem, error_line

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
# Every problem's `type` starts with this: it is also how an answer is known to come from this backend.
PROBLEM_TYPE_PREFIX = "urn:todo-backend:problem:"


def quoted(value: str, limit: int = 40) -> str:
    """`value` as a message quotes it, shortened: a 10 MB paste must not land whole in a log line."""
    return repr(value if len(value) <= limit else f"{value[:limit]}...")


class AppError(ReadsProblem, Exception):
    """Base of every expected failure: its `problem` is the code, the message and the fix."""

    # The class's code; an instance may carry a narrower one (DB_*, TOKEN_*), given to `__init__`.
    code: str = "INTERNAL_ERROR"

    def __init__(self, message: str, fix: str = "", *, code: str | None = None) -> None:
        self.problem = Problem(code or self.code, message, fix)
        self.code = self.problem.code
        super().__init__(str(self.problem))


def report_line(error: AppError) -> str:
    """`error CODE: message. fix`: what the server and the toolbelt print before exiting."""
    return error_line(error.code, str(error))


class SettingsError(AppError):
    code = "CONFIG_INVALID"

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem.message}: {problem.fix}" for problem in self.problems)
        count = len(self.problems)
        super().__init__(f"{count} setting{'s' if count > 1 else ''} invalid:\n{lines}")


class DatabaseURLError(AppError):
    code = "DATABASE_URL_INVALID"

    def __init__(self, reason: str, fix: str) -> None:
        self.reason = reason
        super().__init__(f"DATABASE_URL {reason}", fix)


class PortInUseError(AppError):
    code = "PORT_IN_USE"


class DatabaseUnreachableError(AppError):
    """Connecting to the database failed; `code` names the class of failure (backend/dberrors.py)."""

    def __init__(self, code: str, message: str, fix: str, *, transient: bool = False) -> None:
        self.transient = transient
        super().__init__(message, fix, code=code)


class ApiError(AppError):
    """An error answered as problem+json with `status` and a stable `code`."""

    status: ClassVar[int] = 500

    def __init_subclass__(cls, *, status: int = 0, code: str = "", **kwargs: Any) -> None:
        # `class NotFoundError(ApiError, status=404, code="NOT_FOUND")`: one line per kind of answer.
        super().__init_subclass__(**kwargs)
        cls.status = status or cls.status
        cls.code = code or cls.code

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        self.headers = dict(headers or {})
        self.errors = errors
        super().__init__(detail, code=code)

    @property
    def detail(self) -> str:
        return self.message


class MalformedJSONError(ApiError, status=400, code="INVALID_JSON"):
    pass


class UnauthorizedError(ApiError, status=401, code="TOKEN_INVALID"):
    def __init__(self, detail: str, *, code: str = "TOKEN_INVALID", oauth_error: str | None = "invalid_token") -> None:
        # RFC 6750 section 3: no error code when the request had no credentials.
        challenge = 'Bearer realm="api"'
        if oauth_error:
            challenge += f', error="{oauth_error}", error_description="{_quotable(detail)}"'
        super().__init__(detail, code=code, headers={"WWW-Authenticate": challenge})


def _quotable(text: str) -> str:
    """RFC 6750 allows printable ASCII but `"` and `\\` in error_description."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "'" for c in text)


class ForbiddenError(ApiError, status=403, code="USER_MISMATCH"):
    pass


class NotFoundError(ApiError, status=404, code="NOT_FOUND"):
    pass


class RequestTimeoutError(ApiError, status=408, code="BODY_TIMEOUT"):
    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"The request body did not arrive within {seconds:g} seconds;"
            " send the whole body without pausing (a task is a few hundred bytes)"
        )


class PayloadTooLargeError(ApiError, status=413, code="BODY_TOO_LARGE"):
    pass


class UnsupportedMediaTypeError(ApiError, status=415, code="UNSUPPORTED_MEDIA_TYPE"):
    pass


class ValidationFailedError(ApiError, status=422, code="VALIDATION_FAILED"):
    def __init__(self, errors: list[dict[str, str]]) -> None:
        first = errors[0]
        detail = f"{first['field']}: {first['message']}"
        if len(errors) > 1:
            detail += f" (and {len(errors) - 1} more)"
        super().__init__(detail, errors=errors)


class ServiceUnavailableError(ApiError, status=503, code="DATABASE_UNAVAILABLE"):
    def __init__(self, detail: str, *, code: str = "DATABASE_UNAVAILABLE", retry_after: int = 2) -> None:
        super().__init__(detail, code=code, headers={"Retry-After": str(retry_after)})


_ENCODER = msgspec.json.Encoder()

# Starlette raises HTTPException for unrouted paths and wrong methods.
_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": f"{PROBLEM_TYPE_PREFIX}{code.lower().replace('_', '-')}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    body.update(extra or {})
    return Response(_ENCODER.encode(body), status, headers=dict(headers or {}), media_type=PROBLEM_CONTENT_TYPE)


def is_own_problem(body: bytes) -> bool:
    """Whether an HTTP answer's body is a problem+json of this backend (any copy of it, any version)."""
    try:
        document = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return False
    return isinstance(document, dict) and str(document.get("type", "")).startswith(PROBLEM_TYPE_PREFIX)


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    extra = {"errors": exc.errors} if exc.errors is not None else None
    level = logging.WARNING if exc.status >= 500 else logging.INFO
    # The path as routed (request.url.path drops a decoded CR, LF or tab); the log formatter escapes it.
    logger.log(level, "%s %s -> %d %s: %s", request.method, request.scope["path"], exc.status, exc.code, exc.detail)
    return problem_response(exc.status, exc.code, exc.detail, headers=exc.headers, extra=extra)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, f"HTTP_{exc.status_code}")
    detail = exc.detail
    if exc.status_code == 404:
        detail = _not_found_detail(request)
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed here; allowed: {(exc.headers or {}).get('Allow', '')}"
    return problem_response(exc.status_code, code, detail, headers=exc.headers)


def _not_found_detail(request: Request) -> str:
    path: str = request.scope["path"]
    without_slash = path.rstrip("/")
    if without_slash and without_slash != path and _routed(request, without_slash):
        return f"No route matches {path!r}; without the trailing slash it is {without_slash!r}"
    return f"No route matches {path!r}; see /openapi.json"


def _routed(request: Request, path: str) -> bool:
    scope = {**request.scope, "path": path}
    return any(route.matches(scope)[0] != Match.NONE for route in request.app.routes)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    # This handler runs outside the request-id middleware, so it sets the header itself.
    request_id = REQUEST_ID.get()
    logger.exception("Unhandled error on %s %s", request.method, request.scope["path"])
    return problem_response(
        500,
        "INTERNAL_ERROR",
        f"Unexpected server error; quote request id {request_id} when reporting it",
        headers={"X-Request-ID": request_id, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"},
        extra={"request_id": request_id},
    )
