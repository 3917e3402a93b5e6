"""`python -m backend`: serve with the settings from the environment and `.env`."""

from __future__ import annotations

import sys

from backend.server import main

sys.exit(main())
