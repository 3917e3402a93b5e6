"""The todo backend: a Starlette API for a Next.js + Better Auth frontend."""

__version__ = "0.1.0"
