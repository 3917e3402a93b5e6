"""`python -m backend`: serve with the settings from the environment and `.env` (backend/server.py)."""

from __future__ import annotations

import sys

try:
    from backend.server import main

    sys.exit(main())
except KeyboardInterrupt:  # Ctrl+C before the server's own signal handlers are installed
    sys.exit(130)
