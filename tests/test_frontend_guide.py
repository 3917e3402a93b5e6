"""docs/frontend.md is its example app (examples/nextjs): the app's code, versions and names.

A code block whose first line is a comment naming a file of the example
(`// lib/auth.ts`, `# .env.example`) is that file, or a run of its lines
(indentation aside); every source file of the example is named in the guide;
the versions the guide tells you to install are the ones the example's
package.json pins (and interop/ pins the same Better Auth); and the Better
Auth names the guide uses exist in the package the example installs
(`nox -s frontend` runs those last checks; elsewhere they are skipped).
"""

from __future__ import annotations

import json
import re
import textwrap
from typing import Any

import pytest

from tests.support.suite import ROOT

GUIDE = ROOT / "docs" / "frontend.md"
APP = ROOT / "examples" / "nextjs"
_BLOCK = re.compile(r"^```\w*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_NAMED = re.compile(r"(?://|#) ((?:app|lib)/\S+|next\.config\.ts|\.env\.example)")
# The files a reader copies whole: the guide shows each of them in full.
WHOLE = [
    ".env.example",
    "next.config.ts",
    "app/layout.tsx",
    "lib/auth.ts",
    "app/api/auth/[...all]/route.ts",
    "lib/auth-client.ts",
    "app/sign-up/page.tsx",
    "lib/tasks.ts",
    "lib/api.ts",
    "app/tasks/page.tsx",
]


def shown_files() -> list[tuple[str, str]]:
    """(file, the rest of the block) for each code block of the guide that starts with a file's name."""
    shown = []
    for body in _BLOCK.findall(GUIDE.read_text()):
        first, _, rest = body.partition("\n")
        if named := _NAMED.fullmatch(first):
            shown.append((named[1], rest))
    return shown


def is_run_of_lines(excerpt: str, text: str) -> bool:
    """Whether `excerpt` is consecutive lines of `text`, their common indentation removed."""
    wanted = textwrap.dedent(excerpt).rstrip("\n")
    lines = text.rstrip("\n").splitlines()
    size = len(wanted.splitlines())
    runs = ("\n".join(lines[start : start + size]) for start in range(len(lines) - size + 1))
    return wanted in (textwrap.dedent(run) for run in runs)


def package(path: str = "package.json") -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((APP / path).read_text())
    return manifest


def dependency(name: str) -> str:
    manifest = package()
    version: str = {**manifest["dependencies"], **manifest["devDependencies"]}[name]
    return version


def source_files() -> list[str]:
    found = [*APP.glob("app/**/*.ts*"), *APP.glob("lib/**/*.ts*"), APP / "next.config.ts", APP / ".env.example"]
    return sorted(str(path.relative_to(APP)) for path in found)


@pytest.mark.parametrize(("path", "excerpt"), shown_files())
def test_guide_code_is_the_example_apps(path: str, excerpt: str) -> None:
    assert is_run_of_lines(excerpt, (APP / path).read_text()), f"docs/frontend.md's {path} differs from examples/nextjs"


@pytest.mark.parametrize("path", WHOLE)
def test_guide_shows_the_files_a_reader_copies_in_full(path: str) -> None:
    whole = [excerpt for shown, excerpt in shown_files() if shown == path]

    assert whole == [(APP / path).read_text()]


def test_guide_names_every_source_file_of_the_example() -> None:
    guide = GUIDE.read_text()

    assert len(source_files()) >= len(WHOLE)
    assert [path for path in source_files() if path not in guide] == []


def test_checks_catch_an_edited_line_and_accept_an_indented_run() -> None:
    text = "function f() {\n  if (x) {\n    y();\n  }\n}\n"

    assert is_run_of_lines("if (x) {\n  y();\n}\n", text)
    assert not is_run_of_lines("if (x) {\n  z();\n}\n", text)
    assert not is_run_of_lines("y();\nif (x) {\n", text)


def test_guide_installs_the_versions_the_example_pins() -> None:
    guide = GUIDE.read_text()
    interop = json.loads((ROOT / "interop" / "package.json").read_text())["dependencies"]

    assert dependency("better-auth") == interop["better-auth"]
    assert dependency("better-sqlite3") == interop["better-sqlite3"]
    assert f"better-auth@{dependency('better-auth')}" in guide
    assert f"better-auth {dependency('better-auth')}" in guide
    assert f"better-sqlite3@{dependency('better-sqlite3')}" in guide
    assert f"@better-auth/cli@{dependency('@better-auth/cli')}" in guide
    assert f"create-next-app@{dependency('next')}" in guide
    assert "@types/better-sqlite3" in guide
    assert package()["allowScripts"]["better-sqlite3"] is True


# Each Better Auth name the guide uses, and the files of the installed package that define it.
_BETTER_AUTH = APP / "node_modules" / "better-auth"
_BETTER_AUTH_NAMES = {
    "jwtClient": "dist/client/plugins/index.mjs",
    "toNextJsHandler": "dist/integrations/next-js.mjs",
    "nextCookies": "dist/integrations/next-js.mjs",
    "set-auth-jwt": "dist/plugins/jwt/index.mjs",
    "getToken": "dist/plugins/jwt/index.mjs",
    '"/token"': "dist/plugins/jwt/index.mjs",
    "expirationTime": "dist/plugins/jwt/sign.mjs",
    "definePayload": "dist/plugins/jwt/sign.mjs",
    "jwt?.issuer": "dist/plugins/jwt/sign.mjs",
    "jwt?.audience": "dist/plugins/jwt/sign.mjs",
    "BETTER_AUTH_URL": "dist/utils/url.mjs",
}
_NOT_INSTALLED = "examples/nextjs/node_modules is missing: `nox -s frontend` installs it"


@pytest.mark.skipif(not _BETTER_AUTH.is_dir(), reason=_NOT_INSTALLED)
@pytest.mark.parametrize(("name", "path"), sorted(_BETTER_AUTH_NAMES.items()))
def test_guide_names_exist_in_the_installed_better_auth(name: str, path: str) -> None:
    assert name.strip('"').removeprefix("jwt?.") in GUIDE.read_text()
    assert name in (_BETTER_AUTH / path).read_text()


@pytest.mark.skipif(not _BETTER_AUTH.is_dir(), reason=_NOT_INSTALLED)
def test_installed_better_auth_is_the_pinned_one() -> None:
    installed = json.loads((_BETTER_AUTH / "package.json").read_text())["version"]

    assert installed == dependency("better-auth")
