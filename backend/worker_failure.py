"""A worker's failure to start, handed to the parent, which reports it once.

With WORKERS > 1 the parent's own startup has connected and migrated before
Hypercorn's process manager starts the workers; a worker can still fail for
good at its start (the password was rotated, the database dropped, in
between). The manager sees only exit statuses, so such a worker writes its
error's code and message to a folder the parent made, then exits 1; the
manager stops the other workers, and the parent raises it again (an
`AppError` with the worker's code), which backend/server.py reports once, as a single process's failed start.
The first failure wins: workers usually fail alike.

The workers find the folder by its name under the temporary directory they
share with the parent (the environment, TMPDIR included, is inherited): a
name, unlike a path, fits in Hypercorn's `module:app(...)` application path,
which splits on colons.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Final

from backend.errors import AppError

_PREFIX: Final = "todo-workers-"
_NAME: Final = re.compile(rf"{_PREFIX}[A-Za-z0-9_]+")
_FIRST: Final = "first"


class WorkerFailures:
    """The folder where the first worker to fail at startup leaves its error."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def create(cls) -> WorkerFailures:
        """A new, empty folder (the parent; remove it with `remove`)."""
        return cls(Path(tempfile.mkdtemp(prefix=_PREFIX)))

    @classmethod
    def named(cls, name: str) -> WorkerFailures:
        """The parent's folder, found from a worker by `name`."""
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a worker failures folder: {name!r}")
        return cls(Path(tempfile.gettempdir()) / name)

    @property
    def name(self) -> str:
        return self.folder.name

    def record(self, error: AppError) -> None:
        """Keep `error` unless another worker's failure came first."""
        try:
            with (self.folder / _FIRST).open("x", encoding="utf-8") as file:
                problem = error.problem
                json.dump({"code": problem.code, "message": problem.message, "fix": problem.fix}, file)
        except FileExistsError:
            pass

    def first(self) -> AppError | None:
        """The first worker's failed start, or None when no worker failed at startup."""
        try:
            found = json.loads((self.folder / _FIRST).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return AppError(found["message"], found["fix"], code=found["code"])

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
