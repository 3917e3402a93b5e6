"""The development secret: random, per checkout, kept in var/dev-secret.

With no BETTER_AUTH_SECRET in development, the server and `inv token` share
this file, so a fresh clone can mint a token and call the API with no setup.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from backend.errors import SettingsError
from backend.problems import setting_problem


def development_secret(path: Path, min_length: int) -> str:
    """The secret in `path`, created on first use; `SettingsError` if it cannot be used."""
    fix = f"delete {path} to get a new one, or set BETTER_AUTH_SECRET"
    try:
        value = path.read_text(encoding="ascii").strip() if path.exists() else _create_secret_file(path)
    except (OSError, UnicodeDecodeError) as error:
        reason = "it is not ASCII" if isinstance(error, UnicodeDecodeError) else (error.strerror or str(error)).lower()
        problem = setting_problem("BETTER_AUTH_SECRET", f"is unset and {path} cannot be used: {reason}", fix)
        raise SettingsError([problem]) from None
    if len(value) < min_length:
        problem = setting_problem(
            "BETTER_AUTH_SECRET", f"is unset and {path} holds fewer than {min_length} characters", fix
        )
        raise SettingsError([problem])
    return value


def _create_secret_file(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    # Written privately, then linked into place: each worker process loads the
    # settings, and one starting at the same moment must never read half a file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(value + "\n")
        os.link(temporary, path)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    finally:
        temporary.unlink(missing_ok=True)
    return value
