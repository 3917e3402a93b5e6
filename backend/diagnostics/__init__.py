"""Checks that explain why the backend would not start, written once.

Used by `inv env-check`, by `inv run` before it serves, and by the server's
own startup. Each check returns `Result`s (results.py: a `Problem` of
backend/problems.py with the check's name and a status); none raises for an
expected failure, and each network check has a short timeout.

    environment.py     Python version, required packages (standard library only)
    envfile.py         the `.env` lint
    settings_check.py  every invalid setting, from backend/settings.py's one reading
    ports.py           who holds a TCP port; binds without SO_REUSEADDR (`inv run`, `inv free-port`)
    port_check.py      the port free on every address, or who holds it (ports.py)
    killing.py         ending a port's holder: SIGTERM, then SIGKILL (`inv free-port --kill`)
    database_check.py  connect once, classify the failure (backend/dberrors.py), schema version
    auth_check.py      Better Auth's JWKS reachable, JSON, with usable keys
    report.py          all of them, the network ones concurrently: `inv env-check`
"""
