"""The frontend stand-in: an HTTP server that serves one page and collects its report.

The page calls the backend with `fetch` and a Bearer token (a CORS preflight,
then the real request), as a Next.js client component does, and POSTs what it
saw to `/result` on its own origin.
"""

from __future__ import annotations

import json
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>todo backend CORS check</title>
<script id="config" type="application/json">{config}</script>
<script>
(async () => {{
  const config = JSON.parse(document.getElementById("config").textContent);
  const tasks = `${{config.api}}/api/${{encodeURIComponent(config.user)}}/tasks`;
  const headers = {{Authorization: `Bearer ${{config.token}}`, "Content-Type": "application/json"}};
  const report = {{origin: location.origin}};
  try {{
    const created = await fetch(tasks, {{
      method: "POST", headers, credentials: "include", body: JSON.stringify({{title: config.title}}),
    }});
    report.created = {{
      status: created.status, location: created.headers.get("Location"), body: await created.json(),
    }};
    const listed = await fetch(tasks, {{headers, credentials: "include"}});
    report.listed = {{
      status: listed.status, total: listed.headers.get("X-Total-Count"), body: await listed.json(),
    }};
  }} catch (error) {{
    report.error = `${{error.name}}: ${{error.message}}`;
  }}
  await fetch("/result", {{method: "POST", body: JSON.stringify(report)}});
}})();
</script>
"""


class PageServer:
    """Serves PAGE with `config` at / on 127.0.0.1; reports land in `reports`.

    It listens on `preferred` (Next.js's port 3000) when that is free,
    otherwise on a free port.
    """

    def __init__(self, preferred: int) -> None:
        self.config: dict[str, Any] = {}
        self.reports: queue.Queue[dict[str, Any]] = queue.Queue()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                # "</" cannot end the script element early: the token and titles are JSON.
                config = json.dumps(owner.config).replace("</", "<\\/")
                self._send(200, "text/html; charset=utf-8", PAGE.format(config=config).encode())

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                owner.reports.put(json.loads(self.rfile.read(length)))
                self._send(204, "text/plain", b"")

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        try:
            self._server = ThreadingHTTPServer(("127.0.0.1", preferred), Handler)
        except OSError:
            self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, host: str) -> str:
        return f"http://{host}:{self.port}/"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
