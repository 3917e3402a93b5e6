"""Scripts that measure the running backend; not part of the suite."""
