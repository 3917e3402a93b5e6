"""Isolated, reproducible sessions; CI runs the default ones (`nox`).

`nox` runs every default session: the suite on each Python pyproject.toml's
classifiers name (3.11 to 3.13), each against SQLite and a real PostgreSQL, the PostgreSQL suite through
Debian's PgBouncer in transaction mode (TLS, SCRAM; `pgbouncer`), then lint, typecheck, interop (a
real Better Auth server), browser (headless Chromium), frontend (the guide's
Next.js app, built and clicked through) and onboarding (the README's quick
start on a fresh clone). `nox -l` lists every
session with its one-line description; `nox -s tests -- -k auth` passes the
arguments after `--` to pytest.

Interpreters: python3.X for each of those on PATH (README.md says how to get
them). Locally a missing interpreter, Node, Chromium or PgBouncer
skips its session (as root, Chromium and PgBouncer are installed with
apt-get); with CI=true each of them is a failure.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import nox

nox.needs_version = ">=2026.10"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests", "pgbouncer", "lint", "typecheck", "interop", "browser", "frontend", "onboarding"]

# uv installs without compiling bytecode; where PYTHONDONTWRITEBYTECODE is set
# (as on our CI machine) every server and `inv` command the tests start would
# then compile every module it imports, each time (docs/performance.md).
os.environ.setdefault("UV_COMPILE_BYTECODE", "1")

IN_CI = os.environ.get("CI", "").lower() == "true"
if IN_CI:
    nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).resolve().parent
# Oldest first, from pyproject.toml's classifiers (where `inv env-check` reads them too).
PYTHONS = nox.project.python_versions(nox.project.load_toml(ROOT / "pyproject.toml"))
INTEROP = ROOT / "interop"
EXAMPLE = ROOT / "examples" / "nextjs"
# Installed node_modules kept across clones (see `_npm_ci`).
NPM_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "todo-backend" / "node_modules"
RUNTIME = ("-r", "requirements.txt")
TESTING = (*RUNTIME, "-r", "requirements-test.txt")


def _unavailable(session: nox.Session, reason: str) -> None:
    """A session that cannot run on this machine: a failure in CI, a skip locally."""
    if IN_CI:
        session.error(reason)
    session.skip(reason)


# The suite and static checks.


@nox.session(python=PYTHONS)
@nox.parametrize("db", ["sqlite", "postgresql"])
def tests(session: nox.Session, db: str) -> None:
    """Run the test suite on this Python against SQLite or a real PostgreSQL."""
    _suite(session, {"TEST_DB": db})


# Through PgBouncer on the newest Python only: what it checks is the wire protocol between our
# pool and the pooler, which no Python version changes (and each run costs CI about 4 minutes).
@nox.session(python=PYTHONS[-1])
def pgbouncer(session: nox.Session) -> None:
    """Run the PostgreSQL suite with every app and server behind PgBouncer in transaction mode."""
    _require_pgbouncer(session)
    _suite(session, {"TEST_DB": "postgresql", "TEST_POOLER": "pgbouncer"})


def _suite(session: nox.Session, env: dict[str, str]) -> None:
    session.install(*TESTING)
    # PostgreSQL: TEST_DATABASE_URL, else a throwaway cluster per worker (tests/conftest.py).
    # pytest-xdist: the suite waits on its subprocess servers about half the time, so twice as
    # many workers as cores; one file per worker keeps each module's servers and clusters single.
    # `nox -s tests -- -n 0` runs it in one process (a later -n wins).
    workers = str(2 * (os.cpu_count() or 1))
    session.run("pytest", "-n", workers, "--dist", "loadfile", *session.posargs, env=env)


def _require_pgbouncer(session: nox.Session) -> None:
    """Debian's pgbouncer package (in /usr/sbin)."""
    if not (shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/local/sbin")):
        _apt_install(session, "pgbouncer")


def _apt_install(session: nox.Session, package: str) -> None:
    """Debian's `package`, installed when we may (as root, with apt-get); never a download."""
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        _unavailable(session, f"{package} is not installed: `sudo apt-get install {package}` (Debian/Ubuntu)")
    session.run("apt-get", "update", "-qq", external=True)
    session.run("apt-get", "install", "-y", "-qq", "--no-install-recommends", package, external=True)


@nox.session(python=PYTHONS[0])
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    session.install("-r", "requirements-lint.txt")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHONS[0])
def typecheck(session: nox.Session) -> None:
    """Type-check backend/ and tasks.py with mypy in strict mode, as on Linux, Windows and macOS."""
    session.install(*RUNTIME, "-r", "requirements-lint.txt")
    session.run("mypy")
    # The toolbelt branches on sys.platform (sockets, signals, psutil); mypy checks only the
    # branches of the platform it is told, so the Windows and macOS ones get a run of their own.
    # A cache of their own: mypy drops its whole cache when the platform changes.
    for platform in ("win32", "darwin"):
        session.run("mypy", "--platform", platform, "--cache-dir", f".mypy_cache/{platform}")


# Real clients of the live backend.


@nox.session(python=PYTHONS[0])
def interop(session: nox.Session) -> None:
    """Verify a real Better Auth server's JWTs (EdDSA/ES256/RS256, key rotation, outage) end to end."""
    _require_node(session)
    session.install(*TESTING)
    _npm_ci(session, INTEROP)
    session.run("pytest", "-m", "interop", "tests/interop", *session.posargs)


def _require_node(session: nox.Session) -> None:
    if shutil.which("npm") is None or shutil.which("node") is None:
        _unavailable(session, f"{session.name} needs Node 20+ and npm on PATH (https://nodejs.org or your OS package)")


def _npm_ci(session: nox.Session, project: Path) -> None:
    """Install project/package-lock.json into project/node_modules unless it is already there; timed.

    A copy of each install is kept under NPM_CACHE, keyed by the lockfile and
    Node's version, and linked back on a fresh clone (CI clones anew for every
    run): `npm ci` compiles better-sqlite3 from source here, about 2 CPU
    minutes, as its prebuilt binary comes from GitHub, which we cannot reach.
    """
    where = project.relative_to(ROOT)
    node = session.run("node", "--version", external=True, silent=True) or ""
    digest = hashlib.sha256((project / "package-lock.json").read_bytes() + str(node).encode()).hexdigest()
    modules = project / "node_modules"
    stamp = modules / ".installed-lock-sha256"
    if stamp.is_file() and stamp.read_text() == digest:
        session.log(f"{where}/node_modules matches package-lock.json")
        return
    started = time.monotonic()
    cached = NPM_CACHE / f"{project.name}-{digest[:16]}"
    if cached.is_dir():
        shutil.rmtree(modules, ignore_errors=True)
        shutil.copytree(cached, modules, symlinks=True, copy_function=_link_or_copy)
        session.log(f"{where}/node_modules from {cached}: {time.monotonic() - started:.0f} s")
        return
    session.run("npm", "ci", "--prefix", str(project), "--no-audit", "--no-fund", external=True)
    stamp.write_text(digest)
    session.log(f"npm ci in {where}: {time.monotonic() - started:.0f} s")
    _keep_in_cache(modules, cached)


def _keep_in_cache(modules: Path, cached: Path) -> None:
    """Store `modules` as `cached` (whole or not at all), replacing older installs of the same project."""
    for older in cached.parent.glob(f"{cached.name.rsplit('-', 1)[0]}-*"):
        shutil.rmtree(older, ignore_errors=True)
    partial = cached.with_name(f".{cached.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(modules, partial, symlinks=True, copy_function=_link_or_copy)
    partial.rename(cached)


def _link_or_copy(source: str, target: str) -> None:
    """A hard link (instant, no space) where both are on one file system, else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


@nox.session(python=PYTHONS[0])
def browser(session: nox.Session) -> None:
    """Call the live backend from headless Chromium: CORS preflight, Bearer token, a refused origin."""
    if shutil.which("chromium") is None:
        _apt_install(session, "chromium")
    session.install(*TESTING)
    session.run("pytest", "-m", "browser", "tests/browser", *session.posargs)


@nox.session(python=PYTHONS[0])
def frontend(session: nox.Session) -> None:
    """Build the guide's Next.js app (examples/nextjs) and click it through in headless Chromium against the backend."""
    _require_node(session)
    if shutil.which("chromium") is None:
        _apt_install(session, "chromium")
    session.install(*TESTING)
    _npm_ci(session, EXAMPLE)
    # `next build`, the migration and `next start` run inside the tests, which time them.
    session.run("pytest", "-m", "frontend", "tests/frontend", *session.posargs)
    # docs/frontend.md's Better Auth names, against the package just installed (skipped elsewhere).
    session.run("pytest", "tests/test_frontend_guide.py", "-k", "installed")


@nox.session(python=PYTHONS[0])
def onboarding(session: nox.Session) -> None:
    """Clone HEAD, run the README's quick start in a new venv, make an authenticated request; timed."""
    # The committed HEAD only: uncommitted changes are not in the clone (the log says so).
    # Nothing to install here: the script is stdlib only, and the new venv's pip install is what it times.
    session.run("python", "-m", "scripts.onboarding", *session.posargs)


# Optional sessions, not run by `nox`: `nox -s NAME`.


@nox.session(python=PYTHONS[0], default=False)
def fuzz(session: nox.Session) -> None:
    """Fuzz a live server with schemathesis from its /openapi.json; `-- --max-time 60` bounds each run."""
    session.install(*RUNTIME, "-r", "requirements-fuzz.txt")
    # SQLite in a temporary folder; FUZZ_DATABASE_URL=postgresql://... fuzzes against PostgreSQL.
    session.run("python", "-m", "tests.fuzz", *session.posargs)


@nox.session(python=PYTHONS[0], default=False)
def bench(session: nox.Session) -> None:
    """Load ours, FastAPI + SQLModel and a bare ceiling side by side with wrk; `-- --quick` is a smoke run."""
    if shutil.which("wrk") is None:
        _apt_install(session, "wrk")
    session.install(*RUNTIME, "-r", "benchmarks/requirements.txt")
    # PostgreSQL: BENCH_DATABASE_URL or TEST_DATABASE_URL, else a throwaway cluster.
    session.run("python", "-m", "benchmarks", *session.posargs)
