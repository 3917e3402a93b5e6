"""Lint the `.env` file the way python-decouple will read it.

python-decouple is forgiving in ways that hide mistakes: a line without `=`
is skipped, `export KEY=` defines a key named "export KEY", a `# comment`
after a value becomes part of the value, keys are case-sensitive, and an
exported variable (even an empty one) wins over the file. Each of these is
named here with its line number. The file is read as bytes, so binary data,
a huge value or a missing final newline is a finding, never a traceback.

A finding about a malformed line never quotes its value, whatever the key's
name: `BETTER_AUTH_SECRET: Zq3x...=` or a secret pasted alone on a line must
not come back out in `inv env-check` or `inv run`'s log. What stands before
`=` is shown only when it looks like a name (`_looks_like_a_name`). A value
shadowed by an exported variable is shown masked: never a secret's (see
`is_secret_name`), never a password in a URL.
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
# The shape of a setting's name: upper-case words, digits after letters (S3_BUCKET, OAUTH2_CLIENT_ID).
_UPPER_NAME: Final = re.compile(r"[A-Z]+[0-9]*(?:[A-Z]+[0-9]*)?(?:_[A-Z]+[0-9]*(?:[A-Z]+[0-9]*)?)*")
_MAX_NAME_WORD: Final = 16
_NAME_THEN_SEPARATOR: Final = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)([:\t ])")
_SEPARATORS: Final = {":": "':'", " ": "a space", "\t": "a tab"}
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
        entry = _parse_line(number, raw, known, results)
        if entry is None:
            continue
        first = entries.get(entry.key)
        if first is not None:
            name = _label(entry.key, known)
            results.append(
                warn(
                    CHECK,
                    code="ENV_DUPLICATE_KEY",
                    message=f"{name} is set on line {first.line} and again on line {number}; line {number} wins",
                    fix=f"keep one {entry.key}= line" if name == entry.key else "keep one of the two lines",
                )
            )
        entries[entry.key] = entry
    return entries


def _parse_line(number: int, raw: str, known: set[str], results: list[Result]) -> Entry | None:
    line = raw.strip()
    if "=" not in line:
        results.append(_no_equals(number, line, known))
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
    value_column = len(raw) - len(raw.lstrip()) + len(raw_key) + 1 + len(raw_value) - len(raw_value.lstrip())
    results.extend(_value_problems(number, key, value, value_column))
    return Entry(number, key, _unquote(value))


def _no_equals(number: int, line: str, known: set[str]) -> Result:
    named = _named_before_separator(line, known)
    if named is None:
        return warn(
            CHECK,
            code="ENV_LINE_INVALID",
            message=f"line {number} has no '=', so it is ignored",
            fix="write KEY=value, or start the line with # to make it a comment",
        )
    name, separator = named
    return warn(
        CHECK,
        code="ENV_LINE_INVALID",
        message=f"line {number} has no '=': {name} is followed by {separator}, so the line is ignored",
        fix=_equals_fix(name, known),
    )


def _key_problem(number: int, key: str, known: set[str]) -> Result | None:
    if key.startswith(("export ", "export\t")):
        name = key[len("export") :].strip()
        if _KEY.fullmatch(name) is None:
            return _invalid_key(number, name, known)
        return fail(
            CHECK,
            code="ENV_EXPORT_PREFIX",
            message=f"line {number} starts with 'export', so python-decouple reads no {name}",
            fix=f"remove 'export ': write {name}=...",
        )
    if _KEY.fullmatch(key) is None:
        return _invalid_key(number, key, known)
    if key != key.upper():
        return _lowercase_key(number, key, known)
    return None


def _invalid_key(number: int, key: str, known: set[str]) -> Result:
    """What is before '=' is not a name; it may hold a value (`SECRET: Zq3x...=`), so it is never quoted."""
    spaced = "_".join(key.split()).upper()
    if spaced in known:
        message = f"line {number} has the key {key!r}, which is not a variable name, so it is ignored"
        return fail(CHECK, code="ENV_KEY_INVALID", message=message, fix=f"write {spaced}=...")
    named = _named_before_separator(key, known)
    if named is not None:
        name, separator = named
        message = f"line {number} is not NAME=value: {name} is followed by {separator}, so the line is ignored"
        return fail(CHECK, code="ENV_KEY_INVALID", message=message, fix=_equals_fix(name, known))
    return fail(
        CHECK,
        code="ENV_KEY_INVALID",
        message=f"line {number} has a key that is not a variable name (not shown: it may hold a value), "
        "so it is ignored",
        fix="a key is letters, digits and _ (no spaces), e.g. DATABASE_URL=...",
    )


def _lowercase_key(number: int, key: str, known: set[str]) -> Result:
    if _looks_like_a_name(key, known):
        message = f"line {number} sets {key}, but names are case-sensitive: the backend reads {key.upper()}"
        fix = f"write {key.upper()}=..."
    else:
        message = (
            f"line {number} sets a name that is not in upper case and does not look like a setting's name "
            "(not shown: it may be a value pasted alone), so the backend reads nothing from it"
        )
        fix = "write the setting's name in upper case before '=', e.g. BETTER_AUTH_SECRET=value"
    status = fail if key.upper() in known else warn
    return status(CHECK, code="ENV_LOWERCASE_KEY", message=message, fix=fix)


def _named_before_separator(text: str, known: set[str]) -> tuple[str, str] | None:
    """`NAME: value` or `NAME value`: the NAME (when it is one) and what follows it; never the value."""
    match = _NAME_THEN_SEPARATOR.match(text)
    if match is None:
        return None
    name = match.group(1)
    if name not in known and not _UPPER_NAME.fullmatch(name):
        return None  # a lower-case word before a space is as likely a value as a name
    return name, _SEPARATORS[match.group(2)]


def _equals_fix(name: str, known: set[str]) -> str:
    if name in known:
        return f"write {name}=value, with '=' and no space before it"
    return "a line is NAME=value: letters, digits and _, then '=' (not ':' or a space)"


def _looks_like_a_name(key: str, known: set[str]) -> bool:
    """A setting's name, or words joined by _ in one case (`my_tool`); a pasted value rarely is."""
    if key.upper() in known:
        return True
    one_case = key in (key.upper(), key.lower())
    return (
        one_case
        and _UPPER_NAME.fullmatch(key.upper()) is not None
        and all(len(part) <= _MAX_NAME_WORD for part in key.split("_"))
    )


def _label(key: str, known: set[str]) -> str:
    return key if _looks_like_a_name(key, known) else "a name that looks like a value (not shown)"


def _value_problems(number: int, key: str, value: str, value_column: int) -> list[Result]:
    """Findings about a value that never quote it: a value can be a secret whatever its name."""
    problems: list[Result] = []
    in_quotes = len(value) >= 2 and value[0] in _QUOTES and value[-1] == value[0]
    comment = _INLINE_COMMENT.search(value)
    if not in_quotes and comment is not None:
        problems.append(
            warn(
                CHECK,
                code="ENV_INLINE_COMMENT",
                message=f"line {number}: {key}'s value includes a '# comment' (from column "
                f"{value_column + comment.end()}), which python-decouple keeps as part of the value",
                fix="move the comment to a line of its own",
            )
        )
    elif not in_quotes and (value[:1] in _QUOTES or value[-1:] in _QUOTES):
        problems.append(_unbalanced_quote(number, key, value))
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


def _unbalanced_quote(number: int, key: str, value: str) -> Result:
    where = (
        f"starts with {value[0]} but does not end"
        if value[:1] in _QUOTES
        else f"ends with {value[-1]} but does not start"
    )
    return fail(
        CHECK,
        code="ENV_UNBALANCED_QUOTES",
        message=f"line {number}: {key}'s value {where} with it, so the quote is kept as part of the value",
        fix="quote the whole value with the same quote on both ends, or not at all",
    )


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
            results.append(_unknown_key(entry, known))
    return results


def _unknown_key(entry: Entry, known: set[str]) -> Result:
    if _looks_like_a_name(entry.key, known):
        message = f"line {entry.line} sets {entry.key}, which .env.example does not list; the backend ignores it"
        fix = "remove it, or keep it if another tool reads this .env"
    else:
        message = (
            f"line {entry.line} sets a name that .env.example does not list and that does not look like a name "
            "(not shown: it may be a value pasted alone); the backend ignores it"
        )
        fix = "if it is a value, put its setting's name and '=' before it; otherwise remove the line"
    return warn(CHECK, code="ENV_KEY_UNKNOWN", message=message, fix=fix)


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
