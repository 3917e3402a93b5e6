"""The whole report behind `inv env-check`: every check, in a stable order.

The local checks (Python, packages, `.env`, settings) run first; the network
ones (port, database, JWKS) then run together, each bounded by `timeout`, so
the report takes about as long as its slowest check. A check whose settings
are invalid is skipped with a line that says so, rather than run against a
default the user never chose.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import Final

from backend.diagnostics.auth_check import check_auth
from backend.diagnostics.database_check import check_database
from backend.diagnostics.envfile import lint_env_file
from backend.diagnostics.environment import check_environment
from backend.diagnostics.port_check import check_port
from backend.diagnostics.results import Result, warn
from backend.diagnostics.settings_check import check_settings
from backend.errors import SettingsError
from backend.settings import ENV_FILE, ROOT, SETTING_NAMES, Lookup, Settings, read_env_file

DEFAULT_TIMEOUT: Final = 3.0

# Which settings each network check depends on.
_NEEDS: Final = {
    "port": ("PORT", "HOST"),
    "database": ("DATABASE_URL",),
    "auth": ("BETTER_AUTH_URL", "BETTER_AUTH_JWKS_URL"),
}


@dataclasses.dataclass(frozen=True)
class ReportOptions:
    env_file: Path = ENV_FILE
    example_file: Path = ROOT / ".env.example"
    timeout: float = DEFAULT_TIMEOUT


async def run_checks(options: ReportOptions | None = None) -> list[Result]:
    """Run every check and return their results (the environment's variables are `os.environ`)."""
    options = options or ReportOptions()
    results = check_environment()
    results += lint_env_file(options.env_file, options.example_file, os.environ, SETTING_NAMES)
    lookup, readable = _lookup(options.env_file)
    outcome = check_settings(lookup)
    results += outcome.results if readable else [_without_env_file(result) for result in outcome.results]
    results += await _network_checks(outcome.settings, outcome.invalid, options.timeout)
    return results


def run_report(options: ReportOptions | None = None) -> list[Result]:
    """`run_checks` for synchronous callers."""
    return asyncio.run(run_checks(options))


def _lookup(env_file: Path) -> tuple[Lookup, bool]:
    """The settings lookup, and whether `.env` could be read (the lint has said why not)."""
    try:
        return read_env_file(env_file), True
    except SettingsError:
        return os.environ.get, False


def _without_env_file(result: Result) -> Result:
    if result.status != "ok":
        return result
    message = f"{result.message}, from the environment alone (.env unreadable)"
    problem = dataclasses.replace(result.problem, message=message)
    return dataclasses.replace(result, problem=problem)


async def _network_checks(settings: Settings, invalid: Collection[str], seconds: float) -> list[Result]:
    checks: dict[str, Callable[[Settings], Awaitable[list[Result]]]] = {
        "port": lambda s: asyncio.to_thread(check_port, s),
        "database": lambda s: check_database(s, seconds=seconds),
        "auth": lambda s: check_auth(s, seconds=seconds),
    }
    pending: dict[str, Awaitable[list[Result]]] = {}
    skipped: dict[str, list[Result]] = {}
    for name, run in checks.items():
        broken = [setting for setting in _NEEDS[name] if setting in invalid]
        if broken:
            skipped[name] = [_skipped(name, broken)]
        else:
            pending[name] = run(settings)
    done = dict(zip(pending, await asyncio.gather(*pending.values()), strict=True))
    return [result for name in checks for result in (done[name] if name in done else skipped[name])]


def _skipped(check: str, broken: list[str]) -> Result:
    verb = "is" if len(broken) == 1 else "are"
    return warn(
        check,
        code="CHECK_SKIPPED",
        message=f"not checked, because {', '.join(broken)} {verb} invalid (see settings)",
        fix="fix the settings reported above, then run `inv env-check` again",
    )
