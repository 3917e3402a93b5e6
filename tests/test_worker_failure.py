"""The folder through which a worker's startup failure reaches the parent (backend/worker_failure.py)."""

from __future__ import annotations

import pytest

from backend.errors import PortInUseError
from backend.worker_failure import WorkerFailures


def test_first_failure_wins_and_the_parent_reads_it() -> None:
    parent = WorkerFailures.create()
    try:
        worker = WorkerFailures.named(parent.name)
        assert parent.first() is None

        worker.record(PortInUseError("first"))
        worker.record(PortInUseError("second"))

        first = parent.first()
        assert first is not None
        assert (first.code, str(first)) == ("PORT_IN_USE", "first")
    finally:
        parent.remove()
    assert not parent.folder.exists()


@pytest.mark.parametrize("name", ["../etc", "todo-workers-../x", "other", "todo-workers-"])
def test_a_name_that_is_not_a_failures_folder_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a worker failures folder"):
        WorkerFailures.named(name)
