"""The interpreter and the installed packages.

Standard library only: it must run, and say what is missing, in an
environment where the backend's own dependencies are not installed.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Final

from backend.diagnostics.results import Result, fail, ok

# The supported Pythons are listed once, as pyproject.toml's classifiers; nox reads them too (noxfile.py).
PYPROJECT: Final = Path(__file__).resolve().parents[2] / "pyproject.toml"
# A pattern, not tomllib: this must run, and say so, on a Python too old to have tomllib.
_CLASSIFIER: Final = re.compile(r'"Programming Language :: Python :: (\d+)\.(\d+)"')
INSTALL_FIX: Final = "run `pip install -r requirements.txt` in the project's virtualenv"

# Import name -> the distribution in requirements.in that provides it.
REQUIRED_MODULES: Final = {
    "starlette": "starlette",
    "hypercorn": "hypercorn",
    "databases": "databases",
    "asyncpg": "asyncpg",
    "aiosqlite": "aiosqlite",
    "sqlalchemy": "sqlalchemy",
    "joserfc": "joserfc",
    "decouple": "python-decouple",
    "msgspec": "msgspec",
    "httpx": "httpx",
    "psutil": "psutil",
    "invoke": "invoke",
}


def supported_pythons(pyproject: Path = PYPROJECT) -> list[tuple[int, int]]:
    """The (major, minor) versions pyproject.toml's classifiers name; none without the file (a copy of backend/)."""
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return []
    return [(int(major), int(minor)) for major, minor in _CLASSIFIER.findall(text)]


def check_python(version: tuple[int, ...] | None = None) -> Result:
    """Whether this interpreter (or `version`) is one the project supports."""
    current = tuple(sys.version_info[:3]) if version is None else version
    shown = ".".join(map(str, current))
    pythons = supported_pythons()
    supported = ", ".join(f"{major}.{minor}" for major, minor in pythons)
    if current[:2] in pythons or not pythons:
        return ok("python", f"Python {shown} ({sys.executable})")
    return fail(
        "python",
        code="PYTHON_UNSUPPORTED",
        message=f"Python {shown} ({sys.executable}) is not supported; the backend needs {supported}",
        fix="create the virtualenv with a supported Python, e.g. `python3.12 -m venv .venv`",
    )


def check_packages(modules: dict[str, str] | None = None) -> list[Result]:
    """One failure per required module that cannot be found, or one ok line."""
    wanted = REQUIRED_MODULES if modules is None else modules
    missing = [distribution for module, distribution in wanted.items() if not _importable(module)]
    if not missing:
        return [ok("packages", f"{len(wanted)} required packages importable")]
    return [
        fail(
            "packages",
            code="PACKAGE_MISSING",
            message=f"the package {distribution!r} is not installed for {sys.executable}",
            fix=INSTALL_FIX,
        )
        for distribution in missing
    ]


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def check_environment() -> list[Result]:
    return [check_python(), *check_packages()]
