"""From a parsed JSON document or query to a struct, or to every field's problem at once.

msgspec stops at the first bad field and says what is wrong in prose meant
for developers. The API lists every bad field, in words its users read, so
when msgspec refuses a document each field is tried on its own and the
problem is said from the field's declared type (`msgspec.inspect`): never
from msgspec's message text, whose wording may change in any release.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

import msgspec
from msgspec import inspect

from backend.errors import ValidationFailedError
from backend.logs import printable
from backend.schemas import NOT_TEXT, RuleError, checked, has_lone_surrogate

StructT = TypeVar("StructT", bound=msgspec.Struct)
FieldErrors = list[dict[str, str]]

# How a message names each kind of JSON value, and the Python type msgspec reads it as.
_NOUNS: Final[dict[type, str]] = {
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    str: "a string",
    type(None): "null",
    list: "an array",
    dict: "an object",
}
_BASES: Final[dict[type, type]] = {
    inspect.BoolType: bool,
    inspect.IntType: int,
    inspect.FloatType: float,
    inspect.StrType: str,
    inspect.LiteralType: str,
    inspect.NoneType: type(None),
}


def validate(document: Any, schema: type[StructT], location: str, *, strict: bool) -> StructT:
    """`document` as a `schema`; raises ValidationFailedError naming every field it gets wrong."""
    try:
        return msgspec.convert(document, schema, strict=strict)
    except (msgspec.ValidationError, UnicodeEncodeError):
        # UnicodeEncodeError: msgspec encodes keys (and strings it must read as another type) to
        # UTF-8, and a lone surrogate ("\ud800", valid in JSON text) cannot be: a 422, not a 500.
        errors = _field_errors(document, schema, location, strict=strict)
        raise ValidationFailedError(errors or [field_error(location, location, "does not match its schema")]) from None


def _field_errors(document: Any, schema: type[msgspec.Struct], location: str, *, strict: bool) -> FieldErrors:
    """Every field's problem in `document`, in the schema's order, then the unknown fields."""
    if not isinstance(document, dict):
        return [field_error(location, location, "must be a JSON object")]
    errors: FieldErrors = []
    fields = msgspec.structs.fields(schema)
    for field in fields:
        if field.name in document:
            problem = _field_problem(schema, field, document[field.name], strict=strict)
        else:
            problem = "is required" if field.required else None
        if problem is not None:
            errors.append(field_error(field.name, location, problem))
    if schema.__struct_config__.forbid_unknown_fields:
        known = {field.name for field in fields}
        errors += [_unknown_field(key, location) for key in document if key not in known]
    return errors


def _unknown_field(name: str, location: str) -> dict[str, str]:
    hint = " (the user comes from the token)" if name == "user_id" else ""
    if has_lone_surrogate(name):
        hint = " (it holds a lone surrogate, which is not text)"
    # Escaped: the name goes into the problem's detail and the log line (a "\n" must not start a new line).
    return field_error(printable(name[:100]), location, f"is not a known field{hint}")


def _field_problem(
    schema: type[msgspec.Struct], field: msgspec.structs.FieldInfo, raw: Any, *, strict: bool
) -> str | None:
    try:
        value = msgspec.convert(raw, field.type, strict=strict)
    except msgspec.ValidationError:
        return _type_problem(raw, field.type, strict=strict)
    except UnicodeEncodeError:
        # A lone surrogate in a string msgspec had to encode: say what else is wrong, if anything.
        return _field_problem(schema, field, _without_surrogates(raw), strict=strict) or NOT_TEXT
    try:
        checked(schema, field.name, value)
    except RuleError as error:
        return error.message
    return None


def _type_problem(raw: Any, annotation: Any, *, strict: bool) -> str:
    """Why `annotation` refuses `raw`: its kind of value, or the limit it declares."""
    kinds = accepted_kinds(annotation)
    for kind in kinds:
        try:
            value: Any = msgspec.convert(raw, _BASES[type(kind)], strict=strict)
        except (msgspec.ValidationError, UnicodeEncodeError):
            continue
        return _limit_problem(kind, value)
    return f"must be {' or '.join(_noun(kind) for kind in kinds)}, not {_NOUNS[type(raw)]}"


def accepted_kinds(annotation: Any) -> list[inspect.Type]:
    """The kinds of value a field's type takes (with their limits), unwrapped from unions and metadata."""
    return _kinds(inspect.type_info(annotation))


def _kinds(info: inspect.Type) -> list[inspect.Type]:
    if isinstance(info, inspect.UnionType):
        return [kind for member in info.types for kind in _kinds(member)]
    return _kinds(info.type) if isinstance(info, inspect.Metadata) else [info]


def _noun(kind: inspect.Type) -> str:
    if isinstance(kind, inspect.LiteralType):
        return "one of " + ", ".join(str(value) for value in kind.values)
    return _NOUNS[_BASES[type(kind)]]


def _limit_problem(kind: inspect.Type, value: Any) -> str:
    """The declared limit that `value`, of the right kind, breaks."""
    if isinstance(kind, inspect.LiteralType):
        return f"must be {_noun(kind)}"
    if isinstance(kind, inspect.StrType):
        return f"must be {_range(kind.min_length, kind.max_length)} characters (got {len(value)})"
    low, high = (kind.ge, kind.le) if isinstance(kind, inspect.IntType | inspect.FloatType) else (None, None)
    return f"must be {_range(low, high)}"


def _range(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"from {low} to {high}"
    if high is not None:
        return f"at most {high}"
    if low is not None:
        return f"at least {low}"
    return "within the limits /openapi.json gives"  # a limit this module cannot name: tests/test_schemas.py


def _without_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return "".join("\ufffd" if "\ud800" <= char <= "\udfff" else char for char in value)
    if isinstance(value, list):
        return [_without_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_surrogates(key): _without_surrogates(item) for key, item in value.items()}
    return value


def field_error(field: str, location: str, message: str) -> dict[str, str]:
    """One entry of a 422's `errors`."""
    return {"field": field, "location": location, "message": message}
