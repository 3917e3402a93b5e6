"""What a check finds: a `Result` per finding, and its rendering as text or JSON.

A result is a `Problem` (backend/problems.py: a stable code that
docs/troubleshooting.md explains, a one-line message with secrets already
masked, and the fix) with the check's name and a status: ok, warn or fail.
An ok result's problem is only its message, under the code OK. Warnings never
fail a report; one failure does.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Sequence
from typing import Final, Literal

from backend.problems import Problem, ReadsProblem

Status = Literal["ok", "warn", "fail"]

OK_CODE: Final = "OK"
JSON_VERSION: Final = 1
# A setting whose name holds one of these is a secret (PGPASSWORD, GITHUB_TOKEN, APIKEY)...
_SECRET_WORDS: Final = re.compile(r"SECRET|PASSW|PASSPHRASE|TOKEN|PRIVATE|CREDENTIAL|APIKEY|AUTHORIZATION", re.I)
# ...and so is one with one of these as a whole `_`-separated word (OPENAI_API_KEY, DB_PASS, SENTRY_DSN;
# not MONKEY_COUNT), or ending in AUTH (BASIC_AUTH; BETTER_AUTH_URL is an address, masked as a URL).
_SECRET_PARTS: Final = frozenset({"KEY", "KEYS", "PASS", "PWD", "PW", "DSN", "CREDS", "SALT"})
_MARKS: Final = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}
_COLOURS: Final = {"ok": "32", "warn": "33", "fail": "31"}


@dataclasses.dataclass(frozen=True)
class Result(ReadsProblem):
    """One finding of one check (`check` names it: python, env_file, database, ...)."""

    check: str
    status: Status
    problem: Problem

    @property
    def code(self) -> str:
        return self.problem.code

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status, "code": self.code, "message": self.message, "fix": self.fix}


def ok(check: str, message: str) -> Result:
    return Result(check, "ok", Problem(OK_CODE, message))


def warn(check: str, *, code: str, message: str, fix: str) -> Result:
    return Result(check, "warn", Problem(code, message, fix))


def fail(check: str, *, code: str, message: str, fix: str) -> Result:
    return Result(check, "fail", Problem(code, message, fix))


def found(check: str, problem: Problem, status: Status = "fail") -> Result:
    """A problem raised or collected elsewhere (a setting, a database error), as a row of this check."""
    return Result(check, status, problem)


def is_secret_name(name: str) -> bool:
    """Whether a setting's value must never be shown (BETTER_AUTH_SECRET, *_PASSWORD, *_API_KEY, ...)."""
    parts = name.upper().split("_")
    return _SECRET_WORDS.search(name) is not None or not _SECRET_PARTS.isdisjoint(parts) or parts[-1].endswith("AUTH")


def failed(results: Iterable[Result]) -> bool:
    return any(result.status == "fail" for result in results)


def exit_status(results: Iterable[Result]) -> int:
    """1 when any result failed, else 0 (warnings do not fail)."""
    return 1 if failed(results) else 0


def summary(results: Sequence[Result]) -> dict[str, int]:
    return {status: sum(result.status == status for result in results) for status in ("ok", "warn", "fail")}


def render_json(results: Sequence[Result]) -> str:
    """The stable machine form: `version`, `ok`, `summary` and one object per result."""
    document = {
        "version": JSON_VERSION,
        "ok": not failed(results),
        "summary": summary(results),
        "results": [result.as_dict() for result in results],
    }
    return json.dumps(document, indent=2)


def render_text(results: Sequence[Result], *, colour: bool = False) -> str:
    """One line per result, the fix under each warning and failure, a count at the end."""
    width = max((len(result.check) for result in results), default=0)
    lines: list[str] = []
    for result in results:
        mark = _paint(_MARKS[result.status], result.status, colour)
        detail = result.message if result.status == "ok" else f"{result.code}: {result.message}"
        lines.append(f"{mark} {result.check:<{width}}  {detail}")
        if result.fix and result.status != "ok":
            lines.append(f"{'':4} {'':<{width}}  fix: {result.fix}")
    counts = summary(results)
    lines.append(f"{counts['ok']} ok, {counts['warn']} warning(s), {counts['fail']} failure(s)")
    return "\n".join(lines)


def _paint(text: str, status: Status, colour: bool) -> str:
    return f"\033[{_COLOURS[status]}m{text}\033[0m" if colour else text
