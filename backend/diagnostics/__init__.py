"""Checks that explain why the backend would not start, written once.

Used by `inv env-check`, by `inv run` before it serves, and by the server's
own startup. Each check returns results; none raises for an expected failure.
"""
