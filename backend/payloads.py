"""Turning request bodies and query strings into validated structs.

Bodies are read with a hard size limit (checked on Content-Length and again
while streaming, so a chunked upload cannot exceed it), parsed with the
standard json module (it reports duplicate keys and invalid numbers, which
msgspec would accept silently) and then converted to a schema by msgspec in
strict mode, which names the path of each bad field.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final, TypeVar

import msgspec
from starlette.requests import ClientDisconnect, Request

from backend.errors import (
    MalformedJSONError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    ValidationFailedError,
)
from backend.logs import printable
from backend.schemas import TITLE_MAX

MAX_BODY_BYTES: Final = 64 * 1024
_NOT_TEXT: Final = "must be text without NUL characters or lone surrogates"
_SURROGATE: Final = re.compile("[\ud800-\udfff]")

StructT = TypeVar("StructT", bound=msgspec.Struct)


async def read_body(request: Request, schema: type[StructT], *, optional: bool = False) -> StructT | None:
    """Read, parse and validate a JSON body; `None` when optional and absent."""
    raw = await _read_limited(request)
    if optional and not raw.strip():
        return None
    _require_json_content_type(request)
    document = _parse_json(raw)
    value = _convert(document, schema, "body", strict=True)
    errors = _text_errors(value)
    if errors:
        raise ValidationFailedError(errors)
    return value


def read_query(request: Request, schema: type[StructT]) -> StructT:
    """Validate the query string against `schema` (unknown parameters are ignored)."""
    params: dict[str, Any] = {}
    for key, raw in request.query_params.multi_items():
        if key in schema.__struct_fields__:
            if key in params:
                raise ValidationFailedError([_error(key, "query", "must be given once")])
            params[key] = raw
    query = _convert(params, schema, "query", strict=False)
    errors = _text_errors(query, location="query")
    if errors:
        raise ValidationFailedError(errors)
    return query


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


def _convert(document: Any, schema: type[StructT], location: str, *, strict: bool) -> StructT:
    try:
        return msgspec.convert(document, schema, strict=strict)
    except msgspec.ValidationError as error:
        errors = _errors_per_field(document, schema, location, strict=strict)
        raise ValidationFailedError(errors or [_field_error(str(error), location)]) from None
    except UnicodeEncodeError:
        # msgspec encodes keys (and strings it must read as another type) to UTF-8; a lone surrogate
        # ("\ud800", valid in JSON text) cannot be, so `{"\ud800": 1}` must become a 422, not a 500.
        errors = _errors_per_field(document, schema, location, strict=strict)
        raise ValidationFailedError(errors or [_error(location, location, _NOT_TEXT)]) from None


def _errors_per_field(
    document: Any, schema: type[msgspec.Struct], location: str, *, strict: bool
) -> list[dict[str, str]]:
    """Every field's problem, not only the first one msgspec stops at."""
    if not isinstance(document, dict):
        return []
    errors: list[dict[str, str]] = []
    fields = msgspec.structs.fields(schema)
    for field in fields:
        if field.name not in document:
            if field.required:
                errors.append(_error(field.name, location, "is required"))
            continue
        error = _field_problem(field, document[field.name], location, strict=strict)
        if error is not None:
            errors.append(error)
    known = {field.name for field in fields}
    if schema.__struct_config__.forbid_unknown_fields:
        errors += [_unknown_field(key, location) for key in document if key not in known]
    return errors


def _field_problem(field: msgspec.structs.FieldInfo, raw: Any, location: str, *, strict: bool) -> dict[str, str] | None:
    try:
        value = msgspec.convert(raw, field.type, strict=strict)
    except msgspec.ValidationError as error:
        return _field_error(str(error), location, field.name)
    except UnicodeEncodeError:
        # A lone surrogate in a string msgspec had to encode: say what else is wrong, if anything.
        other = _field_problem(field, _without_surrogates(raw), location, strict=strict)
        return other or _error(field.name, location, _NOT_TEXT)
    problem = _text_problem(field.name, value) if isinstance(value, str) else None
    return _error(field.name, location, problem) if problem else None


def _without_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_surrogates(key): _without_surrogates(item) for key, item in value.items()}
    return value


def _unknown_field(name: str, location: str) -> dict[str, str]:
    hint = " (the user comes from the token)" if name == "user_id" else ""
    if not _is_storable(name):
        hint = " (it holds a lone surrogate, which is not text)"
    # Escaped: the name goes into the problem's detail and the log line (a "\n" must not start a new line).
    return _error(printable(name[:100]), location, f"is not a known field{hint}")


def _field_error(message: str, location: str, field: str = "") -> dict[str, str]:
    # msgspec: "Expected `bool`, got `str` - at `$.completed`"
    text, _, path = message.partition(" - at `")
    field = field or path.rstrip("`").removeprefix("$").removeprefix(".") or location
    if text.startswith("Object missing required field"):
        field = text.rsplit("`", 2)[-2]
        text = "is required"
    elif text.startswith("Object contains unknown field"):
        return _unknown_field(text.rsplit("`", 2)[-2], location)
    elif text.startswith("Expected `object`"):
        text = "must be a JSON object"
    else:
        text = _EXPECTED.sub(_plain_expectation, text)
    return _error(field, location, text)


# msgspec says "Expected `bool`, got `str`"; users read "must be true or false, not a string".
_EXPECTED: Final = re.compile(r"Expected `([^`]+)`, got `([^`]+)`")
_NOUNS: Final = {
    "bool": "true or false",
    "str": "a string",
    "int": "a whole number",
    "float": "a number",
    "null": "null",
    "array": "an array",
    "object": "an object",
    "str | null": "a string or null",
}


def _plain_expectation(match: re.Match[str]) -> str:
    expected, got = match.group(1), match.group(2)
    return f"must be {_NOUNS.get(expected, expected)}, not {_NOUNS.get(got, got)}"


def _error(field: str, location: str, message: str) -> dict[str, str]:
    return {"field": field, "location": location, "message": message}


def _text_errors(value: msgspec.Struct, *, location: str = "body") -> list[dict[str, str]]:
    """Checks msgspec cannot express; trims the title in place."""
    errors: list[dict[str, str]] = []
    for field in value.__struct_fields__:
        text = getattr(value, field)
        if not isinstance(text, str):
            continue
        problem = _text_problem(field, text)
        if problem:
            errors.append(_error(field, location, problem))
        elif field == "title":
            setattr(value, field, text.strip())
    return errors


def _text_problem(field: str, text: str) -> str | None:
    """What is wrong with a text value: NUL or lone surrogates, a blank or long title."""
    if "\x00" in text or not _is_storable(text):
        return _NOT_TEXT
    if field == "title":
        length = len(text.strip())
        if length == 0:
            return "must not be blank"
        if length > TITLE_MAX:
            return f"must be at most {TITLE_MAX} characters (got {length})"
    return None


def _is_storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
