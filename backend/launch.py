"""How a server is asked to start: the settings the command line overrides, and its sockets.

`inv run` builds a `Launch` from its options, `python -m backend` from its
arguments; both hand it to `backend.server.serve`. The overrides travel as
values, never through `os.environ`: the reloader passes them to its child as
arguments (`python -m backend --socket=5 --set=WORKERS=2`), the workers
receive them in their application path (backend/workers.py).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence

from backend.settings import Settings, build_settings, read_env_file


@dataclasses.dataclass(frozen=True)
class Launch:
    # Setting name -> raw value, on top of the environment and `.env` (`inv run --port/--host/--workers`).
    overrides: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # `--port auto`: PORT or, when it is taken, the next port free on every host.
    auto_port: bool = False
    # Restart the server when backend/ or `.env` changes (backend/reloader.py).
    reload: bool = False
    # A `--reload` child: the descriptors of the listening sockets its parent holds.
    inherited: tuple[int, ...] = ()

    def settings(self) -> Settings:
        """The settings from the environment and `.env`, overridden; raise `SettingsError` listing every problem."""
        read = read_env_file()
        return build_settings(
            lambda name: self.overrides[name] if name in self.overrides else read(name), create_dev_secret=True
        )

    def child(self, fds: Sequence[int]) -> list[str]:
        """The `python -m backend` arguments of a child that serves the sockets `fds` with these overrides."""
        return [*(f"--socket={fd}" for fd in fds), *(f"--set={name}={value}" for name, value in self.overrides.items())]

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> Launch:
        """`python -m backend [--socket=FD ...] [--set=NAME=VALUE ...]` (the reloader's child is started so)."""
        parser = argparse.ArgumentParser(prog="python -m backend", description="Serve the API until Ctrl+C.")
        parser.add_argument("--socket", type=int, action="append", default=[], help="serve this inherited socket")
        parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a setting")
        args = parser.parse_args(argv)
        overrides = dict(item.partition("=")[::2] for item in args.set)
        return cls(overrides=overrides, inherited=tuple(args.socket))
