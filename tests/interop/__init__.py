"""Interop with a real Better Auth server: `nox -s interop`."""
