"""Every invalid setting, one result each, from backend/settings.py's own reading.

The checks after this one still need settings. When some are invalid they get
the settings as read, with those names at their defaults, plus the set of
invalid names, so that a check of a broken setting is skipped rather than
run against a default the user never chose.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from backend.diagnostics.results import Result, found, ok
from backend.settings import Lookup, Settings, read_settings, weak_secret_problem

CHECK: Final = "settings"


@dataclasses.dataclass(frozen=True)
class SettingsOutcome:
    results: list[Result]
    settings: Settings
    invalid: frozenset[str]


def check_settings(lookup: Lookup) -> SettingsOutcome:
    """Validate the settings `lookup` gives (never creates the development secret)."""
    settings, problems = read_settings(lookup)
    if problems:
        invalid = frozenset(problem.setting for problem in problems)
        return SettingsOutcome([found(CHECK, problem) for problem in problems], settings, invalid)
    where = "production" if settings.is_production else "development"
    results = [ok(CHECK, f"every setting is valid (APP_ENV={where})")]
    if settings.secret_weakness:
        results.append(found(CHECK, weak_secret_problem(settings.secret_weakness), "warn"))
    return SettingsOutcome(results, settings, frozenset())
