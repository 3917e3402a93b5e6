"""backend/http1.py fails loudly when Hypercorn changes what it hooks.

What it does to connections is tested against a real server in
tests/test_http_protocol.py; here, that an upgrade of Hypercorn which moves
the protocol switch stops the server with a named cause instead of quietly
serving HTTP/2 again.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import version

import pytest
from hypercorn.protocol.h11 import H11Protocol

from backend import http1
from backend.diagnostics.ports import ipv6_available
from backend.server import serve
from backend.settings import Settings
from tests.support.live import free_port


@pytest.fixture
def pristine(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Hypercorn as it is before `serve_http1_only()`, whatever this process did earlier; restored after."""
    monkeypatch.setitem(http1._WRAPPER_NAMES, "H11Protocol", H11Protocol)
    return monkeypatch


async def _handle_events_without_the_check(self: H11Protocol) -> None:
    pass


async def _stream_send_with_a_new_parameter(self: H11Protocol, event: object, extra: object) -> None:
    pass


class _SomeOtherProtocol:
    pass


UPGRADES: dict[str, tuple[Callable[[pytest.MonkeyPatch], None], str]] = {
    "wrapper-builds-another-class": (
        lambda patch: patch.setitem(http1._WRAPPER_NAMES, "H11Protocol", _SomeOtherProtocol),
        "hypercorn.protocol.H11Protocol is not hypercorn.protocol.h11.H11Protocol",
    ),
    "switch-moved": (
        lambda patch: patch.setattr(H11Protocol, "_handle_events", _handle_events_without_the_check),
        "H11Protocol._handle_events no longer calls _check_protocol",
    ),
    "switch-renamed": (
        lambda patch: patch.delattr(H11Protocol, "_check_protocol"),
        "H11Protocol._check_protocol is no longer `async def _check_protocol(self, event)`",
    ),
    "send-changed": (
        lambda patch: patch.setattr(H11Protocol, "stream_send", _stream_send_with_a_new_parameter),
        "H11Protocol.stream_send is no longer `async def stream_send(self, event)`",
    ),
}


def test_installed_hypercorn_is_the_one_http1_was_written_for() -> None:
    assert http1.hypercorn_mismatch() is None


@pytest.mark.parametrize("upgrade", UPGRADES.values(), ids=UPGRADES.keys())
def test_changed_hypercorn_is_refused_naming_what_changed(
    pristine: pytest.MonkeyPatch, upgrade: tuple[Callable[[pytest.MonkeyPatch], None], str]
) -> None:
    change, what = upgrade
    change(pristine)

    with pytest.raises(http1.HypercornUnsupportedError) as raised:
        http1.serve_http1_only()

    assert raised.value.code == "HYPERCORN_UNSUPPORTED"
    assert str(raised.value) == (
        f"Hypercorn {version('hypercorn')} is not built the way backend/http1.py expects ({what}),"
        " so HTTP/2 without TLS cannot be kept off. Install the Hypercorn version requirements.txt pins"
        " (`pip install -r requirements.txt`), or adapt backend/http1.py to this one"
    )
    assert http1._WRAPPER_NAMES["H11Protocol"] is not http1._HTTP1Only


def test_server_with_a_changed_hypercorn_exits_1_with_the_named_cause(
    pristine: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pristine.delattr(H11Protocol, "_check_protocol")
    hosts = ("127.0.0.1", "::1") if ipv6_available() else ("127.0.0.1",)

    status = serve(Settings(hosts=hosts, port=free_port()))

    assert status == 1
    assert capsys.readouterr().err.startswith("error HYPERCORN_UNSUPPORTED: Hypercorn ")


def test_serving_http1_only_twice_is_harmless(pristine: pytest.MonkeyPatch) -> None:
    http1.serve_http1_only()
    http1.serve_http1_only()

    assert http1._WRAPPER_NAMES["H11Protocol"] is http1._HTTP1Only
    assert http1.hypercorn_mismatch() is None
