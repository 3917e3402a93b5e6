"""Fixtures of the browser tests: the Chromium executable."""

from __future__ import annotations

import pytest

from tests.browser.chromium import find_chromium
from tests.conftest import IN_CI


@pytest.fixture(scope="session")
def chromium() -> str:
    executable = find_chromium()
    if executable is not None:
        return executable
    message = "chromium is not installed: `sudo apt-get install chromium` (Debian), or `nox -s browser` as root"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)
