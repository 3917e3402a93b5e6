"""Isolated, reproducible sessions; CI runs the default ones (`nox`).

`nox -l` lists every session with its one-line description.
`nox -s tests -- -k auth` passes the arguments after `--` to pytest.

Interpreters: Python 3.11, 3.12 and 3.13 must be on PATH as python3.11,
python3.12 and python3.13 (README.md says how to get them). Locally a missing
one is skipped; with CI=true nox treats it as a failure.
"""

from __future__ import annotations

import os

import nox

nox.needs_version = ">=2026.10"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests", "lint", "typecheck"]
if os.environ.get("CI", "").lower() == "true":
    nox.options.error_on_missing_interpreters = True

PYTHONS = ["3.11", "3.12", "3.13"]
RUNTIME = ("-r", "requirements.txt")


@nox.session(python=PYTHONS)
@nox.parametrize("db", ["sqlite", "postgresql"])
def tests(session: nox.Session, db: str) -> None:
    """Run the test suite on this Python against SQLite or a real PostgreSQL."""
    session.install(*RUNTIME, "-r", "requirements-test.txt")
    env = {"TEST_DB": db}
    session.run("pytest", *session.posargs, env=env)


@nox.session(python=PYTHONS[0])
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    session.install("-r", "requirements-lint.txt")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHONS[0])
def typecheck(session: nox.Session) -> None:
    """Type-check backend/ and tasks.py with mypy in strict mode."""
    session.install(*RUNTIME, "-r", "requirements-lint.txt")
    session.run("mypy")
