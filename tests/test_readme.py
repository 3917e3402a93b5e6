"""The commands in README.md and docs/ name tasks, flags, sessions and files that exist.

Every line of a ```sh block (and every `$ ` line of a ```console block) is
split into commands; `inv ...` is parsed by invoke's own parser against the
tasks in tasks.py, `nox ...` by nox's own option parser and session filter
against noxfile.py, and the files that `python`, `pip install -r`, `uv pip
compile` and `cp` name must exist (after a `cd`, in that folder).
docs/frontend.md's code is checked against its app in test_frontend_guide.py.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import itertools
import re
import shlex
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from types import ModuleType

import pytest
from invoke.collection import Collection
from invoke.parser import ParseError, Parser, ParserContext
from invoke.program import Program

from tests.support.suite import ROOT

_FENCE = re.compile(r"^```(sh|console)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_OPERATORS = frozenset({"&&", "||", ";", ";;", "|", "|&", "&", "(", ")", "<", ">", ">>", "<<", "2>", "&>"})
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_HELP_FLAGS = ("--help", "-h")
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# The folder a documented command runs in: the root, or where a `cd` before it went.
_CWD: ContextVar[Path] = ContextVar("cwd", default=ROOT)


def shell_lines(markdown: str) -> Iterator[str]:
    """The command lines of the ```sh and ```console blocks, continuation lines joined.

    A line that is only `cd DIR` applies to the lines after it in its block:
    they come as `cd DIR && ...`.
    """
    for language, body in _FENCE.findall(markdown):
        folder = ""
        for text in body.replace("\\\n", " ").splitlines():
            if language == "console" and not text.startswith("$ "):
                continue  # the output of the command above
            line = text[2:] if language == "console" else text
            if not line.strip():
                continue
            yield f"cd {folder} && {line}" if folder else line
            if cd := re.fullmatch(r"cd (\S+)", line.strip()):
                folder = f"{folder}/{cd[1]}" if folder else cd[1]


def commands(line: str) -> list[list[str]]:
    """The simple commands of a shell line: split at `&&`, `|`, `;`, `$(...)`; assignments dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    found: list[list[str]] = [[]]
    for token in lexer:
        if token in _OPERATORS or set(token) <= set("();<>|&"):
            found.append([])
        elif found[-1] or not _ASSIGNMENT.match(token):
            found[-1].append(token)
    return [command for command in found if command]


def check_line(line: str) -> list[str]:
    """What a documented shell line names that does not exist (empty when all is well)."""
    problems: list[str] = []
    cwd = _CWD.set(ROOT)
    try:
        for command in commands(line):
            problems += _command_problems(command)
    finally:
        _CWD.reset(cwd)
    return problems


def _command_problems(command: list[str]) -> list[str]:
    if command[0] == "cd" and len(command) == 2:
        # Not checked itself (the block may create the folder), but the files named after it are.
        _CWD.set(_CWD.get() / command[1])
        return []
    checker = _CHECKERS.get(Path(command[0]).name)
    if checker is None and re.fullmatch(r"python(3(\.\d+)?)?", command[0]):
        checker = _python_problems
    if checker is None:
        return []
    return [f"{shlex.join(command)}: {problem}" for problem in checker(command[1:])]


# invoke: its own parser, against the collection tasks.py defines.


def _load(path: Path) -> ModuleType:
    """Run tasks.py or noxfile.py as a module of its own, as invoke and nox do."""
    spec = importlib.util.spec_from_file_location(f"{path.stem}_under_test", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def _task_collection() -> Collection:
    return Collection.from_module(_load(ROOT / "tasks.py"))


def _inv_problems(args: list[str]) -> list[str]:
    collection = _task_collection()
    if args and args[0] in _HELP_FLAGS:  # `inv --help TASK`: the task is the flag's optional value
        return [] if len(args) == 1 or args[1] in collection.task_names else [f"no task named {args[1]!r}"]
    args = [arg for arg in args if arg not in _HELP_FLAGS]  # `inv TASK --help`
    parser = Parser(initial=ParserContext(args=Program().core_args()), contexts=collection.to_contexts())
    try:
        parser.parse_argv(args)
    except ParseError as error:
        return [f"invoke says: {error} (tasks: {', '.join(sorted(collection.task_names))})"]
    return []


# nox: its own option parser, and its own session filter over noxfile.py.


@functools.cache
def _nox_registry() -> dict[str, Callable[..., object]]:
    from nox import registry

    _load(ROOT / "noxfile.py")  # its decorators fill nox's registry
    return dict(registry.get())


def _nox_problems(args: list[str]) -> list[str]:
    from nox._options import options
    from nox.manifest import Manifest

    try:
        with contextlib.redirect_stderr(io.StringIO()) as stderr:
            parsed = options.parser().parse_args(args)
    except SystemExit:
        return [f"nox says: {stderr.getvalue().strip().splitlines()[-1]}"]
    names = getattr(parsed, "sessions", None) or []
    if not names:
        return []
    manifest = Manifest(_nox_registry(), options.namespace())
    try:
        manifest.filter_by_name(names)
    except KeyError as error:
        return [f"nox says: {error.args[0]} (sessions: {', '.join(_nox_registry())})"]
    return []


# Files: the scripts, requirement files and examples a command reads.


def _missing(paths: list[str]) -> list[str]:
    return [f"{path} does not exist" for path in paths if not (_CWD.get() / path).exists()]


def _python_problems(args: list[str]) -> list[str]:
    if args[:1] == ["-m"] and len(args) > 1:
        if args[1] == "pip":
            return _pip_problems(args[2:])
        package = args[1].split(".")[0]
        if not (ROOT / package).is_dir():
            return []  # the standard library or an installed package (venv, pytest...)
        module = args[1].replace(".", "/")
        exists = (ROOT / f"{module}.py").exists() or (ROOT / module / "__init__.py").exists()
        return [] if exists else [f"no module {args[1]} in the project"]
    scripts = [arg for arg in args[:1] if arg.endswith(".py")]
    return _missing(scripts)


def _pip_problems(args: list[str]) -> list[str]:
    if args[:1] != ["install"]:
        return []
    files = [value for flag, value in itertools.pairwise(args) if flag in ("-r", "--requirement")]
    files += [arg[2:] for arg in args if arg.startswith("-r") and len(arg) > 2]
    return _missing(files)


def _uv_problems(args: list[str]) -> list[str]:
    if args[:2] == ["pip", "compile"]:
        return _missing([arg for arg in args[2:] if arg.endswith((".in", ".txt"))])
    if args[:2] == ["pip", "install"]:
        return _pip_problems(args[1:])
    return []


def _cp_problems(args: list[str]) -> list[str]:
    sources = [arg for arg in args if not arg.startswith("-")][:-1]
    return _missing(sources)


_CHECKERS: dict[str, Callable[[list[str]], list[str]]] = {
    "inv": _inv_problems,
    "invoke": _inv_problems,
    "nox": _nox_problems,
    "pip": _pip_problems,
    "pip3": _pip_problems,
    "uv": _uv_problems,
    "cp": _cp_problems,
}


def _documented_lines(pages: list[Path]) -> list[tuple[str, str]]:
    return [(page.name, line) for page in pages for line in shell_lines(page.read_text())]


# The documented commands.


@pytest.mark.parametrize(("page", "line"), _documented_lines([ROOT / "README.md"]))
def test_readme_command_names_tasks_flags_and_files_that_exist(page: str, line: str) -> None:
    assert check_line(line) == []


@pytest.mark.parametrize(("page", "line"), _documented_lines(PAGES[1:]))
def test_docs_command_names_tasks_flags_and_files_that_exist(page: str, line: str) -> None:
    assert check_line(line) == []


def test_readme_commands_are_found() -> None:
    programs = {command[0] for _, line in _documented_lines([ROOT / "README.md"]) for command in commands(line)}

    assert {"pip", "inv", "nox", "curl"} <= programs


def test_readme_quick_start_is_install_and_run_then_nox() -> None:
    """The onboarding session runs exactly these two lines on a fresh clone."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]

    block = _FENCE.search(section)

    assert block is not None
    assert block.group(1) == "sh"
    assert block.group(2).splitlines() == ["pip install -r requirements.txt && inv run", "nox"]


# The checker catches what is wrong.


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("inv nosuch", "No idea what 'nosuch' is"),
        ("inv run --nosuch", "No idea what '--nosuch' is"),
        ("TOKEN=$(inv token --sub)", "needed value"),
        ("inv --help nosuch", "no task named 'nosuch'"),
        ("pip install -r requirements.txt && inv nosuch", "No idea what 'nosuch' is"),
        ("nox -s nosuch", "Sessions not found: nosuch"),
        ("nox -s tests-3.10", "Sessions not found"),
        ("nox --nosuch", "unrecognized arguments: --nosuch"),
        ("python scripts/nosuch.py", "scripts/nosuch.py does not exist"),
        ("python -m scripts.nosuch", "no module scripts.nosuch"),
        ("pip install -r requirements-nosuch.txt", "requirements-nosuch.txt does not exist"),
        ("uv pip compile nosuch.in -o requirements.txt", "nosuch.in does not exist"),
        ("cp .env.nosuch .env", ".env.nosuch does not exist"),
        ("cd examples/nextjs && cp .env.nosuch .env.local", ".env.nosuch does not exist"),
    ],
)
def test_checker_reports_what_does_not_exist(line: str, expected: str) -> None:
    problems = check_line(line)

    assert len(problems) == 1
    assert expected in problems[0]


@pytest.mark.parametrize(
    "line",
    [
        "inv run --port auto --reload",
        "inv run --port=8001",
        "inv free-port --kill --yes --grace 2",
        "inv free-port --next",
        "inv --help run",
        "inv env-check --help",
        "nox -s tests -- -k auth",
        "nox -s \"tests-3.12(db='sqlite')\" lint",
        "python -m venv .venv && . .venv/bin/activate",
        "curl -s http://localhost:8000/health  # inv nosuch in a comment is not a command",
        "cd examples/nextjs && cp .env.example .env.local",
    ],
)
def test_checker_accepts_what_exists(line: str) -> None:
    assert check_line(line) == []


def test_a_cd_line_applies_to_the_lines_after_it_in_its_block() -> None:
    markdown = "```sh\ncd examples\ncd nextjs\ncp .env.example .env.local\n```\n\n```sh\ncp .env.example .env\n```\n"

    assert list(shell_lines(markdown)) == [
        "cd examples",
        "cd examples && cd nextjs",
        "cd examples/nextjs && cp .env.example .env.local",
        "cp .env.example .env",
    ]


def test_commands_split_at_operators_and_substitutions() -> None:
    line = 'TOKEN=$(inv token --sub alice) && curl -s http://x -H "Authorization: Bearer $TOKEN" | jq .'

    assert commands(line) == [
        ["inv", "token", "--sub", "alice"],
        ["curl", "-s", "http://x", "-H", "Authorization: Bearer $TOKEN"],
        ["jq", "."],
    ]


def test_architecture_table_names_paths_that_exist() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    table = text[text.index("| concern | where |") :].split("\n\n", 1)[0]
    paths = re.findall(r"`((?:backend|scripts|tests|interop|\.ci)/[^`]*|tasks\.py|noxfile\.py)`", table)

    assert len(paths) > 20
    assert [path for path in paths if not (ROOT / path).exists()] == []


def _slugs(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a page."""
    headings = re.findall(r"^#{1,6} (.+)$", re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def test_docs_links_point_at_existing_headings() -> None:
    links = [
        (page, target, anchor)
        for page in PAGES
        for target, anchor in re.findall(r"\]\(([^)#:]*\.md)?#([^)]+)\)", page.read_text())
    ]
    broken = [
        f"{page.name} -> {target or page.name}#{anchor}"
        for page, target, anchor in links
        if anchor not in _slugs(((page.parent / target) if target else page).read_text())
    ]

    assert len(links) > 10
    assert broken == []
