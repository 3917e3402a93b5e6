"""Lint the `.env` file the way python-decouple will read it.

python-decouple is forgiving in ways that hide mistakes: a line without `=`
is skipped, `export KEY=` defines a key named "export KEY", a `# comment`
after a value becomes part of the value, keys are case-sensitive, and an
exported variable (even an empty one) wins over the file. Each of these is
named here with its line number. The file is read as bytes, so binary data,
a huge value or a missing final newline is a finding, never a traceback.
Values are shown only masked and shortened.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

from backend.dburl import mask_url
from backend.diagnostics.results import Result, fail, is_secret_name, ok, warn
from backend.errors import quoted

CHECK: Final = "env_file"
MAX_VALUE_LENGTH: Final = 4096
_KEY: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INLINE_COMMENT: Final = re.compile(r"\s#")
_QUOTES: Final = ("'", '"')


@dataclasses.dataclass(frozen=True)
class Entry:
    line: int
    key: str
    value: str  # as python-decouple sees it: stripped, one pair of matching quotes removed


def lint_env_file(path: Path, example: Path, environ: Mapping[str, str], known: Iterable[str] = ()) -> list[Result]:
    """Every finding in `path`, compared with `example` and `environ`; an ok line when none."""
    text = _read_text(path)
    if isinstance(text, Result):
        return [text]
    results: list[Result] = []
    if text and not text.endswith(("\n", "\r")):
        results.append(
            warn(
                CHECK,
                code="ENV_NO_FINAL_NEWLINE",
                message=f"{path} does not end with a newline",
                fix="end the file with a newline: `echo >> .env` appends the next key to a new line",
            )
        )
    entries = _parse(text, set(known), results)
    example_keys = set(_parse(_read_example(example), set(), []))
    results.extend(_compare_keys(entries, example_keys, set(known)))
    results.extend(_shadowed(entries, environ))
    if not results:
        results.append(ok(CHECK, f"{path}: {len(entries)} setting(s), well-formed"))
    return results


def _read_text(path: Path) -> str | Result:
    if not path.exists():
        return warn(
            CHECK,
            code="ENV_FILE_MISSING",
            message=f"no .env at {path}: every setting has its default",
            fix="to change a setting, `cp .env.example .env` and edit it",
        )
    try:
        if not path.is_file():
            raise IsADirectoryError("it is not a regular file (a directory?)")
        data = path.read_bytes()
    except OSError as error:
        return fail(
            CHECK,
            code="ENV_FILE_UNREADABLE",
            message=f"{path} cannot be read: {error.strerror or error}",
            fix="make it a readable text file, or delete it",
        )
    return _decode(path, data)


def _decode(path: Path, data: bytes) -> str | Result:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        reason = f"byte 0x{data[error.start]:02x} on line {line} is not UTF-8 text"
        return _not_text(path, reason)
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        return _not_text(path, f"line {line} holds a NUL byte (binary data)")
    return text


def _not_text(path: Path, reason: str) -> Result:
    return fail(
        CHECK,
        code="ENV_FILE_NOT_TEXT",
        message=f"{path} is not a text file: {reason}",
        fix="rewrite the file as UTF-8 text (compare with .env.example), or delete it",
    )


def _read_example(example: Path) -> str:
    try:
        return example.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _lines(text: str) -> list[str]:
    # Like reading a file in text mode: \n, \r\n and \r end lines, nothing else does.
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _parse(text: str, known: set[str], results: list[Result]) -> dict[str, Entry]:
    """The entries python-decouple will read (the last of a repeated key wins); findings go to `results`."""
    entries: dict[str, Entry] = {}
    for number, raw in enumerate(_lines(text), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        entry = _parse_line(number, line, known, results)
        if entry is None:
            continue
        first = entries.get(entry.key)
        if first is not None:
            results.append(
                warn(
                    CHECK,
                    code="ENV_DUPLICATE_KEY",
                    message=f"{entry.key} is set on line {first.line} and again on line {number}; line {number} wins",
                    fix=f"keep one {entry.key}= line",
                )
            )
        entries[entry.key] = entry
    return entries


def _parse_line(number: int, line: str, known: set[str], results: list[Result]) -> Entry | None:
    if "=" not in line:
        results.append(
            warn(
                CHECK,
                code="ENV_LINE_INVALID",
                message=f"line {number} has no '=', so it is ignored",
                fix="write KEY=value, or start the line with # to make it a comment",
            )
        )
        return None
    raw_key, raw_value = line.split("=", 1)
    key, value = raw_key.strip(), raw_value.strip()
    problem = _key_problem(number, key, known)
    if problem is not None:
        results.append(problem)
        return None
    if raw_key != key or raw_value[:1].isspace():
        results.append(
            warn(
                CHECK,
                code="ENV_SPACES_AROUND_EQUALS",
                message=f"line {number} has spaces around '=' ({key} = ...)",
                fix=f"write {key}=value: the shell's `source` and docker's --env-file do not accept the spaces",
            )
        )
    results.extend(_value_problems(number, key, value))
    return Entry(number, key, _unquote(value))


def _key_problem(number: int, key: str, known: set[str]) -> Result | None:
    if key.startswith("export ") or key.startswith("export\t"):
        name = key[len("export") :].strip()
        return fail(
            CHECK,
            code="ENV_EXPORT_PREFIX",
            message=f"line {number} starts with 'export', so python-decouple reads no {name}",
            fix=f"remove 'export ': write {name}=...",
        )
    if _KEY.fullmatch(key) is None:
        return fail(
            CHECK,
            code="ENV_KEY_INVALID",
            message=f"line {number} has the key {quoted(mask_url(key), 60)}, which is not a variable name, "
            "so it is ignored",
            fix="a key is letters, digits and _ (no spaces), e.g. DATABASE_URL=...",
        )
    if key != key.upper():
        message = f"line {number} sets {key}, but names are case-sensitive: the backend reads {key.upper()}"
        fix = f"write {key.upper()}=..."
        if key.upper() in known:
            return fail(CHECK, code="ENV_LOWERCASE_KEY", message=message, fix=fix)
        return warn(CHECK, code="ENV_LOWERCASE_KEY", message=message, fix=fix)
    return None


def _value_problems(number: int, key: str, value: str) -> list[Result]:
    problems: list[Result] = []
    in_quotes = len(value) >= 2 and value[0] in _QUOTES and value[-1] == value[0]
    if not in_quotes and _INLINE_COMMENT.search(value):
        problems.append(
            warn(
                CHECK,
                code="ENV_INLINE_COMMENT",
                message=f"line {number}: {key}'s value {_show(key, value)} includes a '# comment', "
                "which python-decouple keeps as part of the value",
                fix="move the comment to a line of its own",
            )
        )
    elif not in_quotes and (value[:1] in _QUOTES or value[-1:] in _QUOTES):
        problems.append(
            fail(
                CHECK,
                code="ENV_UNBALANCED_QUOTES",
                message=f"line {number}: {key}'s value {_show(key, value)} has an unbalanced quote, kept as part of it",
                fix="quote the whole value with the same quote on both ends, or not at all",
            )
        )
    if len(value) > MAX_VALUE_LENGTH:
        problems.append(
            warn(
                CHECK,
                code="ENV_VALUE_TOO_LONG",
                message=f"line {number}: {key}'s value is {len(value)} characters long",
                fix="no setting needs more than a few hundred characters: check the line was not pasted into",
            )
        )
    return problems


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] in _QUOTES and value[-1] == value[0]:
        return value[1:-1]
    return value


def _compare_keys(entries: Mapping[str, Entry], example_keys: set[str], known: set[str]) -> list[Result]:
    results: list[Result] = []
    names = sorted(example_keys | known)
    for key, entry in entries.items():
        if key in example_keys:
            continue
        if key in known:
            results.append(
                warn(
                    CHECK,
                    code="ENV_KEY_NOT_IN_EXAMPLE",
                    message=f"line {entry.line} sets {key}, which .env.example does not list",
                    fix=f"add {key} to .env.example with a comment and its default",
                )
            )
            continue
        guess = difflib.get_close_matches(key, names, n=1, cutoff=0.75)
        if guess:
            results.append(
                fail(
                    CHECK,
                    code="ENV_KEY_TYPO",
                    message=f"line {entry.line} sets {key}, which no setting is called; did you mean {guess[0]}?",
                    fix=f"rename it to {guess[0]}",
                )
            )
        else:
            results.append(
                warn(
                    CHECK,
                    code="ENV_KEY_UNKNOWN",
                    message=f"line {entry.line} sets {key}, which .env.example does not list; the backend ignores it",
                    fix="remove it, or keep it if another tool reads this .env",
                )
            )
    return results


def _shadowed(entries: Mapping[str, Entry], environ: Mapping[str, str]) -> list[Result]:
    results: list[Result] = []
    for key, entry in entries.items():
        exported = environ.get(key)
        if exported is None or exported == entry.value:
            continue
        if exported == "" and entry.value.strip():
            results.append(
                warn(
                    CHECK,
                    code="ENV_SHADOWED_BY_EMPTY",
                    message=f"{key} is exported empty, so its value in .env (line {entry.line}) is ignored "
                    "and the default is used",
                    fix=f"`unset {key}` in your shell (or remove it from the environment that starts the backend)",
                )
            )
        else:
            results.append(
                warn(
                    CHECK,
                    code="ENV_SHADOWED",
                    message=f"{key} in .env (line {entry.line}, {_show(key, entry.value)}) is overridden by "
                    f"the exported {key}={_show(key, exported)}",
                    fix=f"`unset {key}` to use the .env value, or remove it from .env",
                )
            )
    return results


def _show(key: str, value: str) -> str:
    """The value as it may be printed: never a secret, never a password in a URL."""
    if is_secret_name(key):
        return "'***'"
    return quoted(mask_url(value) if "://" in value or "@" in value else value, 60)
