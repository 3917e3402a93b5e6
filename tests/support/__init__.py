"""Real test doubles: a throwaway PostgreSQL, a JWKS server, a live backend."""
