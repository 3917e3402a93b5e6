"""How a server is asked to start (backend/launch.py), and how a launch reaches a reload child or a worker."""

from __future__ import annotations

import pytest

from backend.errors import SettingsError
from backend.launch import Launch
from backend.workers import decode_overrides, encode_overrides


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret of its own: no development secret is made in the checkout."""
    monkeypatch.setenv("BETTER_AUTH_SECRET", "launch-tests-" + "k3Qz9" * 8)


def test_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9001")
    monkeypatch.setenv("WORKERS", "3")

    settings = Launch(overrides={"PORT": "9002", "HOST": "::1"}).settings()

    assert (settings.port, settings.hosts, settings.workers) == (9002, ("::1",), 3)
    assert {"PORT", "HOST", "WORKERS"} <= settings.explicit


def test_a_bad_override_is_named_like_a_bad_setting() -> None:
    with pytest.raises(SettingsError, match="WORKERS"):
        Launch(overrides={"WORKERS": "lots"}).settings()


def test_a_reload_child_gets_its_sockets_and_overrides_as_arguments() -> None:
    launch = Launch(overrides={"HOST": "::1,127.0.0.1", "WORKERS": "2"}, auto_port=True, reload=True)

    arguments = launch.child([5, 6])

    assert arguments == ["--socket=5", "--socket=6", "--set=HOST=::1,127.0.0.1", "--set=WORKERS=2"]
    assert Launch.from_argv(arguments) == Launch(overrides=launch.overrides, inherited=(5, 6))


def test_python_m_backend_without_arguments_is_a_plain_launch() -> None:
    assert Launch.from_argv([]) == Launch()


def test_overrides_reach_a_worker_through_an_application_path_that_splits_on_colons() -> None:
    encoded = encode_overrides({"HOST": "::1", "PORT": "8001"})

    assert ":" not in encoded
    assert decode_overrides(encoded) == {"HOST": "::1", "PORT": "8001"}
