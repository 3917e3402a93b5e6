"""Logging: one line per event, each carrying the request id it belongs to."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Final

REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")

FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def configure_logging(level: str) -> None:
    """Send every logger (ours, Hypercorn's, the libraries') to stderr in one format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # `databases` logs every query with its arguments at DEBUG: values may be private.
    logging.getLogger("databases").setLevel(max(logging.INFO, root.level))
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
