"""tests/support/ is shared with the bench and scripts/, whose environments have no pytest."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.suite import ROOT

# What benchmarks/ and scripts/ import from tests/support/.
SHARED = ["apps", "databases", "live", "pgbouncer", "pgcluster", "tcpproxy"]


@pytest.mark.parametrize("module", SHARED)
def test_shared_support_module_imports_without_pytest(module: str) -> None:
    blocked = "import sys; sys.modules['pytest'] = None; sys.modules['_pytest'] = None; "
    result = subprocess.run(
        [sys.executable, "-c", f"{blocked}import tests.support.{module}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
