"""The folder through which a worker's startup failure reaches the parent (backend/worker_failure.py)."""

from __future__ import annotations

import pytest

from backend.worker_failure import WorkerFailures


def test_first_failure_wins_and_the_parent_reads_it() -> None:
    parent = WorkerFailures.create()
    try:
        worker = WorkerFailures.named(parent.name)
        assert parent.first() is None

        worker.record("error DB_AUTH_FAILED: first")
        worker.record("error DB_AUTH_FAILED: second")

        assert parent.first() == "error DB_AUTH_FAILED: first"
    finally:
        parent.remove()
    assert not parent.folder.exists()


@pytest.mark.parametrize("name", ["../etc", "todo-workers-../x", "other", "todo-workers-"])
def test_a_name_that_is_not_a_failures_folder_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a worker failures folder"):
        WorkerFailures.named(name)
