"""The example Next.js + Better Auth app (examples/nextjs) in headless Chromium: `nox -s frontend`."""
