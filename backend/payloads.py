"""Turning request bodies and query strings into validated structs.

Bodies are read with a hard size limit (checked on Content-Length and again
while streaming, so a chunked upload cannot exceed it), parsed with the
standard json module (it reports duplicate keys and invalid numbers, which
msgspec would accept silently) and then validated against a schema in strict
mode (backend/validation.py), which names each bad field.
"""

from __future__ import annotations

import json
from typing import Any, Final

from starlette.requests import ClientDisconnect, Request

from backend.errors import (
    MalformedJSONError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    ValidationFailedError,
)
from backend.validation import StructT, field_error, validate

MAX_BODY_BYTES: Final = 64 * 1024


async def read_body(request: Request, schema: type[StructT]) -> StructT:
    """Read, parse and validate a JSON body."""
    return _validate_body(request, await _read_limited(request), schema)


async def read_optional_body(request: Request, schema: type[StructT]) -> StructT | None:
    """Like `read_body`, but `None` when there is no body (or only white space)."""
    raw = await _read_limited(request)
    return _validate_body(request, raw, schema) if raw.strip() else None


def _validate_body(request: Request, raw: bytes, schema: type[StructT]) -> StructT:
    _require_json_content_type(request)
    return validate(_parse_json(raw), schema, "body", strict=True)


def read_query(request: Request, schema: type[StructT]) -> StructT:
    """Validate the query string against `schema` (unknown parameters are ignored)."""
    params: dict[str, Any] = {}
    for key, raw in request.query_params.multi_items():
        if key in schema.__struct_fields__:
            if key in params:
                raise ValidationFailedError([field_error(key, "query", "must be given once")])
            params[key] = raw
    return validate(params, schema, "query", strict=False)


async def _read_limited(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _too_large()
            chunks.append(chunk)
    except ClientDisconnect:
        # Nobody is left to answer, but this must be a logged 4xx, not a 500 with a traceback.
        raise MalformedJSONError("The client disconnected before the body was complete") from None
    return b"".join(chunks)


def _too_large() -> PayloadTooLargeError:
    return PayloadTooLargeError(f"The body is larger than {MAX_BODY_BYTES} bytes; a task is far smaller")


def _require_json_content_type(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        shown = media_type or "none"
        raise UnsupportedMediaTypeError(f"Content-Type is {shown}; send JSON with Content-Type: application/json")


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant)
    except RecursionError:
        raise MalformedJSONError("The JSON body is nested too deeply") from None
    except ValueError as error:  # includes JSONDecodeError and UnicodeDecodeError
        raise MalformedJSONError(f"The body is not valid JSON: {_short(error)}") from None


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise ValueError(f"the key {duplicate[:50]!r} appears twice")
    return document


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _short(error: ValueError) -> str:
    return str(error)[:200]
