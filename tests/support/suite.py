"""What this run of the suite is: which database, which pooler, in CI or not, and where the project is."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parent.parent.parent
TEST_DB = os.environ.get("TEST_DB", "sqlite")
TEST_POOLER = os.environ.get("TEST_POOLER", "")
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(message: str) -> NoReturn:
    """A test that cannot run on this machine: a failure in CI, which must run everything; a skip elsewhere."""
    import pytest  # here, not above: the bench and scripts/ import tests/support/ without pytest installed

    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)
