"""`npm run dev` opened at http://127.0.0.1:PORT, as the guide's `allowedDevOrigins` line promises.

Next.js 16's dev server refuses its scripts to a host other than localhost
unless next.config.ts lists it: the page shows, never hydrates, and its form
does nothing. With `allowedDevOrigins: ["127.0.0.1"]` the form works.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.chromium import open_driven
from tests.frontend import ui
from tests.frontend.nextapp import DEV_START_TIMEOUT, NextServer, app_environment, next_dev, run
from tests.support.live import free_port

pytestmark = pytest.mark.frontend


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NextServer]:
    port = free_port()
    env = app_environment(
        app_url=f"http://127.0.0.1:{port}",
        api_url="http://127.0.0.1:8000",  # no backend: these pages do not call it
        database=Path(tmp_path_factory.mktemp("nextdev")) / "auth.sqlite",
        secret=secrets.token_urlsafe(32),
    )
    run(["npx", "@better-auth/cli", "migrate", "--yes"], env)
    with next_dev(env, port) as server:
        server.start(DEV_START_TIMEOUT)
        yield server


def test_dev_server_opened_at_127_0_0_1_runs_the_sign_in_form(chromium: str, dev_server: NextServer) -> None:
    with open_driven(chromium) as page:
        ui.open_form(page, f"{dev_server.url}/sign-in")
        ui.fill(page, {"email": "nobody@example.com", "password": "not a password"})
        refused = ui.until(page, lambda state: state["alert"] is not None, timeout=DEV_START_TIMEOUT)

    assert refused["alert"] == "Invalid email or password"
    assert "Blocked cross-origin request" not in dev_server.output
