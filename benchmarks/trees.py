"""Another commit's backend beside the working tree's: what a change gained, measured by the same tools.

`with checkout("main") as tree:` gives a temporary folder holding that ref's
`backend/` package (`git archive`: nothing of the working tree), which
`cost --against` and `levers --against` run with this interpreter and the
working tree's benchmarks: the same packages and the same measuring code, the
other code under test.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """`ref`'s (a branch, tag or commit) backend/ in a temporary folder, removed afterwards."""
    command = ["git", "archive", "--format=tar", ref, "backend"]
    archive = subprocess.run(command, cwd=ROOT, capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(f"git archive {ref} failed: {archive.stderr.decode(errors='replace').strip()}")
    with tempfile.TemporaryDirectory(prefix="bench-tree-") as folder, tempfile.TemporaryFile() as tar:
        tar.write(archive.stdout)
        tar.seek(0)
        with tarfile.open(fileobj=tar) as files:
            files.extractall(folder, filter="data")
        yield Path(folder)


def describe(ref: str) -> str:
    """`ref` with its short commit, for a report."""
    commit = subprocess.run(["git", "rev-parse", "--short", ref], cwd=ROOT, capture_output=True, text=True, check=False)
    return f"{ref} ({commit.stdout.strip()})" if commit.returncode == 0 and commit.stdout.strip() != ref else ref


def python_with_backend_from(tree: Path, module: str) -> list[str]:
    """`python -m module` whose `import backend` finds `tree`'s, and everything else the working tree's."""
    launcher = (
        "import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
        "runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)"
    )
    return [sys.executable, "-c", launcher, str(tree), module]
