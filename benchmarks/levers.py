"""Issue 17's levers as they are built, and the switch that turns each off, for ours with and without it.

A lever with a switch is a setting of the product; the bench only sets it,
never patches our code at run time:

- `token-cache`: `TOKEN_CACHE_SIZE=0` verifies every token on every request
  (backend/tokencache.py).

The levers without a switch (one middleware instead of five layers, request
ids from a counter instead of `uuid4()`, the token parsed once) are measured
against the code before them: `cost SCENARIO --against REF` and
`levers SCENARIO --against REF` run a git ref of this repository (the commit
before them, say) beside the working tree (benchmarks/trees.py).
"""

from __future__ import annotations

import dataclasses
from typing import Final

from backend.settings import Settings

# Lever -> the Settings field that turns it off, and its value then; the setting is the field's name in capitals.
SWITCHES: Final[dict[str, tuple[str, object]]] = {"token-cache": ("token_cache_size", 0)}


def chosen(names: str) -> list[str]:
    """The comma-separated levers (an unknown name is an error, not a silent no-op)."""
    picked = [name for name in names.split(",") if name]
    unknown = [name for name in picked if name not in SWITCHES]
    if unknown:
        raise SystemExit(f"unknown lever(s) {', '.join(unknown)}; known: {', '.join(SWITCHES)}")
    return picked


def settings_without(settings: Settings, names: list[str]) -> Settings:
    """`settings` with these levers switched off (ours run in process).

    Code from before a lever (`--against`) has no switch for it: it is off there already.
    """
    fields = {field.name for field in dataclasses.fields(settings)}
    return dataclasses.replace(
        settings, **{field: value for field, value in (SWITCHES[name] for name in names) if field in fields}
    )


def env_without(names: list[str]) -> dict[str, str]:
    """The environment that switches these levers off (ours as a server)."""
    return {field.upper(): str(value) for field, value in (SWITCHES[name] for name in names)}
