"""Logging: one line per event, each carrying the request id it belongs to.

Every line goes through `SafeFormatter`, the one place where what a client
sent is made safe to log: the arguments of a record (a path, a JSON key, an
error's detail) have their control characters written as escapes, so a key
`"zz\\n2099-01-01 ... ERROR ..."` cannot start a forged line and a path with
ESC or BEL cannot drive the operator's terminal. A record starts at column 0
with its timestamp; any further line it has (a traceback) is indented.
"""

from __future__ import annotations

import logging
import numbers
import re
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, Final

REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")

FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"

# C0 and C1 controls, DEL, soft hyphen and invisible format characters, bidi
# overrides ("Trojan Source"), Unicode line and paragraph separators, BOM,
# lone surrogates (which cannot even be written as UTF-8) and tag characters.
_UNSAFE: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f"
    "\ufeff\ufff9-\ufffb\ud800-\udfff\U000e0000-\U000e007f]"
)
_CONTINUATION_INDENT: Final = "  "


def printable(text: str) -> str:
    """`text` with each control, invisible or line-breaking character as a Python escape (`\\n`, `\\x1b`)."""
    return _UNSAFE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


class _PrintableText(str):
    """A text argument: `%s` shows it escaped, `%r` as its repr (which escapes the same characters)."""

    __slots__ = ("_original",)
    _original: str

    def __new__(cls, text: str) -> _PrintableText:
        self = super().__new__(cls, printable(text))
        self._original = text
        return self

    def __repr__(self) -> str:
        return printable(repr(self._original))


class _Printable:
    """An argument that is not text or a number, escaped whether `%s` or `%r` shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: object) -> None:
        self._value = value

    def __str__(self) -> str:
        return printable(str(self._value))

    def __repr__(self) -> str:
        return printable(repr(self._value))


def _safe(value: object) -> object:
    if isinstance(value, str):
        return _PrintableText(value)
    if value is None or isinstance(value, numbers.Number):
        return value  # %d and %g need the number itself; it holds nothing to escape
    return _Printable(value)


def _safe_args(args: Any) -> Any:
    if isinstance(args, Mapping):
        return {key: _safe(value) for key, value in args.items()}
    return tuple(_safe(arg) for arg in args)


class SafeFormatter(logging.Formatter):
    """Formats a record as one line whatever its arguments hold; tracebacks follow, indented."""

    def format(self, record: logging.LogRecord) -> str:
        safe = logging.makeLogRecord(record.__dict__)
        if record.args:
            safe.args = _safe_args(record.args)
        else:
            # Without arguments the message itself may carry a library's data.
            safe.msg = printable(str(record.msg))
        first, *rest = super().format(safe).split("\n")
        return "\n".join([first, *(_indented(line) for line in rest)])

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return _printable_lines(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's name
        return _printable_lines(super().formatStack(stack_info))


def _printable_lines(text: str) -> str:
    return "\n".join(printable(line) for line in text.split("\n"))


def _indented(line: str) -> str:
    return line if line[:1].isspace() or not line else _CONTINUATION_INDENT + line


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def configure_logging(level: str) -> None:
    """Send every logger (ours, Hypercorn's, the libraries') to stderr in one format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter(FORMAT))
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # `databases` logs every query with its arguments at DEBUG: values may be private.
    logging.getLogger("databases").setLevel(max(logging.INFO, root.level))
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
