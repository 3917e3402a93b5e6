"""Fixtures of the browser tests: the Chromium executable."""

from __future__ import annotations

import pytest

from tests.browser.chromium import require_chromium


@pytest.fixture(scope="session")
def chromium() -> str:
    return require_chromium()
