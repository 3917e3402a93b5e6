"""The one value every expected failure is: a stable code, a message and the fix.

    Problem            code, message, fix; `setting` names the setting it is about, if any
    ├── raised         inside `AppError` (backend/errors.py), which adds nothing but the raise
    │                  (an `ApiError` adds its HTTP status, a `DatabaseUnreachableError` whether to retry)
    ├── collected      by the settings reader (backend/settings.py), all at once in one `SettingsError`
    └── reported       by `inv env-check` as a `Result` row (backend/diagnostics/results.py),
                       which adds the check's name and its severity (ok, warn, fail)

Renderers read it: problem+json (backend/errors.py), `error CODE: ...` and
an exit status (`error_line`), a log line, a report row. None builds one
back from another's text. Every code is explained in docs/troubleshooting.md.

Standard library only: `inv env-check` renders problems where the backend's
own dependencies may be missing.
"""

from __future__ import annotations

import dataclasses
from typing import Final

CONFIG_INVALID: Final = "CONFIG_INVALID"


@dataclasses.dataclass(frozen=True)
class Problem:
    code: str
    message: str  # one sentence, secrets masked; a setting's problem starts with the setting's name
    fix: str = ""
    setting: str = ""

    def __str__(self) -> str:
        return f"{self.message}. {self.fix}" if self.fix else self.message


class ReadsProblem:
    """`message` and `fix` read from `self.problem`: what an error or a report row shows of it."""

    problem: Problem

    @property
    def message(self) -> str:
        return self.problem.message

    @property
    def fix(self) -> str:
        return self.problem.fix


def setting_problem(setting: str, predicate: str, fix: str, *, code: str = CONFIG_INVALID) -> Problem:
    """A problem with one setting: `PORT` + `is 'abc', not a whole number`."""
    return Problem(code, f"{setting} {predicate}", fix, setting)


def error_line(code: str, text: str) -> str:
    """The line a failed command prints on stderr before its exit status."""
    return f"error {code}: {text}"
