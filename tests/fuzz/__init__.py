"""Schemathesis against a live server: `nox -s fuzz` (or `python -m tests.fuzz`)."""
