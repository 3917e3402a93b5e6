"""Every invalid setting, one result each, from backend/settings.py's own validation.

The checks after this one still need settings. When some are invalid they get
settings built with those names left at their defaults, plus the set of
invalid names, so that a check of a broken setting is skipped rather than
run against a default the user never chose.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from backend.dburl import parse_database_url
from backend.diagnostics.results import Result, fail, ok, warn
from backend.errors import DatabaseURLError, SettingProblem, SettingsError
from backend.settings import Lookup, Settings, build_settings, weak_secret_warning

CHECK: Final = "settings"


@dataclasses.dataclass(frozen=True)
class SettingsOutcome:
    results: list[Result]
    settings: Settings | None  # None only when even the defaults do not validate
    invalid: frozenset[str]


def check_settings(lookup: Lookup) -> SettingsOutcome:
    """Validate the settings `lookup` gives (never creates the development secret)."""
    try:
        settings = build_settings(lookup)
    except SettingsError as error:
        results = [_result(problem, lookup) for problem in error.problems]
        invalid = frozenset(problem.setting for problem in error.problems)
        return SettingsOutcome(results, _fallback(lookup, invalid), invalid)
    where = "production" if settings.is_production else "development"
    results = [ok(CHECK, f"every setting is valid (APP_ENV={where})")]
    if settings.secret_weakness:
        message, _, fix = weak_secret_warning(settings.secret_weakness).rpartition("; ")
        results.append(warn(CHECK, code="SECRET_WEAK", message=message, fix=fix))
    return SettingsOutcome(results, settings, frozenset())


def _result(problem: SettingProblem, lookup: Lookup) -> Result:
    code = "CONFIG_INVALID"
    if problem.setting == "DATABASE_URL" and _url_is_malformed(lookup("DATABASE_URL")):
        code = "DATABASE_URL_INVALID"
    return fail(CHECK, code=code, message=f"{problem.setting} {problem.message}", fix=problem.fix)


def _url_is_malformed(value: str | None) -> bool:
    if value is None or not value.strip():
        return False  # the default is used, which parses
    try:
        parse_database_url(value.strip())
    except DatabaseURLError:
        return True
    return False


def _fallback(lookup: Lookup, invalid: frozenset[str]) -> Settings | None:
    """Settings with the invalid names at their defaults; production rules can reject those too."""
    dropped = set(invalid)
    for _ in range(3):
        try:
            return build_settings(lambda name: None if name in dropped else lookup(name))
        except SettingsError as error:
            # Judge the rest by development rules: production refuses even some defaults.
            dropped.update({"APP_ENV", *(problem.setting for problem in error.problems)})
    return None
