"""The toolbelt: `inv --list` shows every task, `inv --help TASK` its options.

Tasks are thin wrappers over backend/: each turns an `AppError` into invoke's
`Exit` with the line `error CODE: message. fix` (backend/errors.py's
`report_line`); invoke prints it on stderr and exits with its status: 1 for a
failure, 2 for a bad option.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

# invoke turns bytecode writing off before it loads this file (its --write-pyc), so backend/
# would be compiled again at every `inv run`: 0.4 s of the start. Python's own switches
# (-B, PYTHONDONTWRITEBYTECODE) still decide.
sys.dont_write_bytecode = bool(sys.flags.dont_write_bytecode)

if TYPE_CHECKING:
    from backend.diagnostics.ports import PortHolder
    from backend.diagnostics.results import Result
    from backend.errors import AppError
    from backend.settings import Settings


@task(
    help={
        "port": "port to listen on, or `auto` for the next free one (default: PORT from .env, else 8000)",
        "host": "addresses to listen on, comma-separated (default: HOST, else localhost: 127.0.0.1 and ::1)",
        "workers": "worker processes (default: WORKERS, else 1)",
        "reload": "restart when backend/**/*.py or .env changes (development only)",
    }
)
def run(
    c: Context, port: str | None = None, host: str | None = None, workers: str | None = None, reload: bool = False
) -> None:
    """Check the port, then serve the API with Hypercorn (migrations applied) until Ctrl+C or SIGTERM.

    Exit status: 0 after a clean stop, 1 when the server cannot start (one line
    names the cause and the fix), 2 for a bad option value.
    """
    from backend.errors import SettingsError
    from backend.launch import Launch
    from backend.logs import configure_logging
    from backend.server import serve

    auto = port is not None and port.lower() == "auto"
    options = {"PORT": None if auto or port is None else _port_option(port), "HOST": host, "WORKERS": workers}
    overrides = {name: value for name, value in options.items() if value is not None}
    for name, value in overrides.items():
        if name != "PORT":
            _check_option(name, value)
    launch = Launch(overrides=overrides, auto_port=auto, reload=reload)
    findings = _fast_findings()
    try:
        settings = launch.settings()
    except SettingsError as error:
        raise _failure(error) from None
    configure_logging(settings.log_level)
    for finding in findings:
        logging.getLogger("tasks").warning("%s: %s (fix: %s)", finding.code, finding.message, finding.fix)
    status = serve(settings, launch)  # it printed the cause of a failed start
    if status:
        raise Exit(code=status)


@task(
    help={
        "port": "the port to look at (default: PORT from .env, else 8000)",
        "kill": "end the processes that hold it: SIGTERM, then SIGKILL after the grace period",
        "yes": "do not ask before ending them (needed when not run from a terminal)",
        "force": "also end another user's process, PID 1, or a parent of this command",
        "grace": "seconds between SIGTERM and SIGKILL (default 5)",
        "next_": "print the nearest free port from --port up, and nothing else",
    }
)
def free_port(
    c: Context,
    *,
    port: str | None = None,
    kill: bool = False,
    yes: bool = False,
    force: bool = False,
    grace: str | None = None,
    next_: bool = False,
) -> None:
    """Show which process holds the port (pid, name, command line, user); --kill ends it.

    Exit status: 0 when the port is free (already, or once --kill ended its
    holders; with --next, a free port was printed), 1 when it is still held,
    2 for a bad option value or a --kill that could not ask for confirmation.
    """
    from backend.diagnostics.killing import GRACE_SECONDS
    from backend.diagnostics.ports import next_free_port
    from backend.errors import AppError

    if next_ and kill:
        raise _usage("OPTION_INVALID", "--next and --kill do not combine: --next only prints a free port")
    seconds = GRACE_SECONDS if grace is None else _grace_option(grace)
    number, hosts = _port_and_hosts(port)
    try:
        if next_:
            print(next_free_port(number, hosts))
            return
        holders = _named_holders(number, hosts)
        if holders is None:
            return
        _print_holders(number, holders)
        if not kill:
            print(f"End it with `inv free-port --port {number} --kill`, or serve elsewhere: `inv run --port auto`.")
            raise Exit(code=1)
        _end(holders, force=force, yes=yes, seconds=seconds)
    except AppError as error:
        raise _failure(error) from None
    _check_ended(number, hosts)


@task(help={"json": "print the report as JSON (stable: for scripts and CI)"})
def env_check(c: Context, json: bool = False) -> None:
    """Diagnose the setup (Python, packages, .env, settings, port, database, JWKS); exit 1 on a failure."""
    import os

    from backend.diagnostics.environment import check_environment
    from backend.diagnostics.results import exit_status, render_json, render_text

    results = check_environment()
    if exit_status(results) == 0:  # the other checks import the packages it found missing
        from backend.diagnostics.report import run_report

        results = run_report()
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    print(render_json(results) if json else render_text(results, colour=colour))
    raise Exit(code=exit_status(results))


@task
def migrate(c: Context) -> None:
    """Apply pending database migrations and say which."""
    import asyncio

    from backend.errors import AppError
    from backend.migrations import migrate as apply_pending

    try:
        applied = [f"{m.version:04d} {m.name}" for m in asyncio.run(apply_pending(_settings()))]
    except AppError as error:
        raise _failure(error) from None
    print("\n".join(f"applied {name}" for name in applied) or "schema is current; nothing to apply")


@task(
    help={
        "sub": "user id the token is for (Better Auth's user id); required",
        "ttl": "lifetime, e.g. 15m, 1h, 7d (default 1h)",
        "email": "email claim",
        "name": "name claim",
    }
)
def token(
    c: Context, sub: str | None = None, ttl: str = "1h", email: str | None = None, name: str | None = None
) -> None:
    """Print a development token (HS256, signed with BETTER_AUTH_SECRET) for curl: `inv token --sub alice`."""
    # `sub` has a default so that invoke makes it an option, not a positional argument:
    # a positional one takes the next word whatever it is, and `inv token --help` minted a token for "--help".
    from backend.devtokens import mint_token, parse_duration
    from backend.errors import AppError

    if sub is None:
        raise _usage("OPTION_INVALID", "--sub is required: the user id the token is for, e.g. `inv token --sub alice`")
    try:
        print(mint_token(_settings(), sub, ttl_seconds=parse_duration(ttl), email=email, name=name))
    except AppError as error:
        raise _failure(error) from None


def _fast_findings() -> list[Result]:
    """What `inv env-check` would warn about the interpreter and `.env`, in milliseconds (no network)."""
    from backend.diagnostics.envfile import lint_env_file
    from backend.diagnostics.environment import check_python
    from backend.settings import ENV_FILE, ROOT, SETTING_NAMES

    results = [check_python(), *lint_env_file(ENV_FILE, ROOT / ".env.example", os.environ, SETTING_NAMES)]
    # No `.env` is the normal state of a fresh clone: every setting has its default.
    return [result for result in results if result.status != "ok" and result.code != "ENV_FILE_MISSING"]


def _port_option(value: str) -> str:
    from backend.diagnostics.ports import PortArgumentError, parse_port

    try:
        return str(parse_port(value))
    except PortArgumentError as error:
        raise _usage(error.code, str(error)) from None


def _check_option(setting: str, value: str) -> None:
    """Validate a command-line override with the rules of the setting it overrides."""
    from backend.errors import SettingsError
    from backend.settings import build_settings

    try:
        build_settings({setting: value}.get)
    except SettingsError as error:
        problem = error.problems[0]
        predicate = problem.message.removeprefix(f"{setting} ")
        raise _usage(
            "OPTION_INVALID", f"--{setting.lower()} (overrides {setting}) {predicate}: {problem.fix}"
        ) from None


def _grace_option(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 600:  # also false for nan
        raise _usage(
            "OPTION_INVALID", f"--grace {value[:40]!r} is not a number of seconds from 0 to 600, e.g. --grace 5"
        )
    return seconds


def _port_and_hosts(port: str | None) -> tuple[int, tuple[str, ...]]:
    """The port to look at and the configured hosts; settings that fail matter only without --port."""
    from backend.errors import SettingsError
    from backend.settings import load_settings

    number = None if port is None else int(_port_option(port))
    try:
        settings = load_settings(create_dev_secret=False)
    except SettingsError as error:
        if number is None:
            raise _failure(error) from None
        return number, ()
    return (settings.port if number is None else number), settings.hosts


def _named_holders(port: int, hosts: tuple[str, ...]) -> list[PortHolder] | None:
    """Who holds `port`; None, once said, when it is free (or only closing). `Exit` when nobody can be named."""
    from backend.diagnostics.ports import checked_hosts, closing_connections, is_free, port_holders

    holders = port_holders(port)
    if not holders and is_free(port, hosts):
        print(f"port {port} is free on {', '.join(checked_hosts(hosts))}")
        return None
    if holders == [] and closing_connections(port):
        print(f"port {port} has no listener, only connections of a stopped server closing (TIME_WAIT, up to a minute)")
        print("`inv run` can use it already; other programs may have to wait.")
        return None
    if not holders:
        raise Exit(f"port {port} is in use, but the OS does not say by whom: run the command with sudo", 1)
    return holders


def _check_ended(port: int, hosts: tuple[str, ...]) -> None:
    """After --kill: `Exit` 1 when the port is held again."""
    again = _named_holders(port, hosts)
    if again is not None:
        _print_holders(port, again, again=True)
        print("A supervisor (systemd, docker, a --reload parent) may have restarted it: stop that instead.")
        raise Exit(code=1)


def _print_holders(port: int, holders: list[PortHolder], *, again: bool = False) -> None:
    print(f"port {port} is {'held again' if again else 'held'} by:")
    for holder in holders:
        where = ", ".join(holder.addresses) or "?"
        print(f"  pid {holder.pid}  {holder.name or '?'}  user {holder.user or '?'}  listening on {where}")
        print(f"    {holder.cmdline or '(command line hidden)'}")


def _end(holders: list[PortHolder], *, force: bool, yes: bool, seconds: float) -> None:
    """End `holders` (asking first unless `yes`), saying which signal ended each."""
    from backend.diagnostics.killing import end_processes, processes_to_end

    processes = processes_to_end(holders, force=force)
    if not yes:
        _confirm(f"End {', '.join(h.describe() for h in holders)}?")
    for ended in end_processes(processes, seconds):
        print(f"ended pid {ended.pid} ({ended.signal})")


def _confirm(question: str) -> None:
    """Ask on the terminal; exit 2 when there is none to ask on, 1 on anything but yes."""
    if not sys.stdin.isatty():
        raise _usage("CONFIRMATION_REQUIRED", "--kill needs a terminal to ask on; add --yes to end it without asking")
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        print("Nothing ended.")
        raise Exit(code=1)


def _usage(code: str, message: str) -> Exit:
    """A bad option value: exit status 2."""
    from backend.problems import error_line

    return Exit(error_line(code, message), 2)


def _failure(error: AppError) -> Exit:
    """A failure of backend/: exit status 1."""
    from backend.errors import report_line

    return Exit(report_line(error), 1)


def _settings() -> Settings:
    from backend.errors import SettingsError
    from backend.settings import load_settings

    try:
        return load_settings()
    except SettingsError as error:
        raise _failure(error) from None
