"""Contract tests: the docs cover every setting and every error code in the code."""

from __future__ import annotations

import re

from backend.errors import _HTTP_CODES
from backend.settings import SETTING_NAMES
from tests.support.suite import ROOT

_CODE_PATTERNS = (
    re.compile(r'\bcode(?::\s*\w+(?:\[\w+\])?)?\s*=\s*"([A-Z][A-Z0-9_]+)"'),
    re.compile(r'_fail\(\s*"([A-Z][A-Z0-9_]+)"'),
    re.compile(r'DatabaseUnreachableError\(\s*"([A-Z][A-Z0-9_]+)"'),
)


def error_codes() -> set[str]:
    codes = set(_HTTP_CODES.values())
    for path in (ROOT / "backend").rglob("*.py"):
        source = path.read_text()
        for pattern in _CODE_PATTERNS:
            codes.update(pattern.findall(source))
    return codes


def test_error_codes_are_found() -> None:
    codes = error_codes()

    assert {"TOKEN_EXPIRED", "DB_AUTH_FAILED", "PORT_IN_USE", "VALIDATION_FAILED", "NOT_FOUND"} <= codes


def test_every_error_code_is_explained_in_troubleshooting() -> None:
    text = (ROOT / "docs" / "troubleshooting.md").read_text()

    missing = sorted(code for code in error_codes() if f"`{code}`" not in text and f"### {code}" not in text)

    assert missing == []


def test_every_setting_is_documented_in_configuration() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", text, re.MULTILINE))

    assert documented == set(SETTING_NAMES)


def test_docs_links_point_at_existing_files() -> None:
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
