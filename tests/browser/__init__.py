"""The backend called from a real browser (headless Chromium): `nox -s browser`."""
