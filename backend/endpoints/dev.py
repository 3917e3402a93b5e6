"""The demo page at /dev/: a token field and the task API, before a frontend exists.

Development only: `create_app` adds these routes when APP_ENV=development, so
in production /dev/ is the same 404 as any unknown path. They are plain
`Route`s, not `ApiRoute`s, so /openapi.json leaves them out: the page is a
client of the API, not part of it. The files live in backend/static/ and are
read on each request, so an edit shows on the next reload.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from backend.routing import Endpoint

STATIC: Final = Path(__file__).resolve().parent.parent / "static"
# The page's own policy (the API's JSON needs none): its script and style come
# from these files only, nothing inline, and it talks to this origin only.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS: Final = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Referrer-Policy": "no-referrer"}


def _file(name: str, media_type: str) -> Endpoint:
    path = STATIC / name

    async def serve(request: Request) -> Response:
        return FileResponse(path, media_type=media_type, headers=_HEADERS)

    return serve


async def _to_page(request: Request) -> Response:
    # The page loads dev.js and dev.css relative to its own URL: it must end in "/".
    return RedirectResponse("/dev/")


routes = [
    Route("/dev", _to_page),
    Route("/dev/", _file("dev.html", "text/html; charset=utf-8")),
    Route("/dev/dev.js", _file("dev.js", "text/javascript; charset=utf-8")),
    Route("/dev/dev.css", _file("dev.css", "text/css; charset=utf-8")),
]
