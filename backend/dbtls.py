"""TLS to PostgreSQL: what a URL's sslmode, sslrootcert and channel_binding mean here.

libpq's meanings are kept. `require` encrypts without verifying the server;
`verify-ca` checks that a trusted CA signed its certificate, `verify-full`
also that the certificate names the host. `sslrootcert=/path/ca.pem` is the CA
to trust (with `require` it checks the CA, as libpq does); `sslrootcert=system`
(libpq 16) trusts the system's CAs, implies verify-full and, as in libpq,
refuses a weaker sslmode.

`channel_binding=require` is the one exception. With it, libpq binds the SCRAM
login to the TLS session, so a man in the middle cannot relay the login even
when the certificate is not checked. asyncpg cannot bind channels, and simply
dropping the parameter left Neon's `sslmode=require`: TLS that anyone in the
path could intercept. So here it raises the floor to verify-full: the
certificate must verify against the system's CAs (or `sslrootcert`) for the
host in the URL, else the connection is refused
(DB_TLS_CHANNEL_BINDING_UNVERIFIED). Refusing such URLs outright would break
every Neon URL as pasted; verifying keeps what channel binding protects
against, and is what Neon itself recommends (`sslmode=verify-full`): its
certificates come from a public CA. The price: it trusts the system's CA list,
and a server with a private CA needs `sslrootcert`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import ssl
from typing import Final

from backend.errors import DatabaseUnreachableError, DatabaseURLError, quoted

SSL_MODES: Final = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_SSL_ALIASES: Final = {"true": "require", "false": "disable", "1": "require", "0": "disable"}
_CHANNEL_BINDING: Final = {"disable", "prefer", "require"}
_SYSTEM: Final = "system"
# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH.
_NAME_MISMATCH: Final = {62, 64}
_UNVERIFIED_TEXT: Final = {
    None: "TLS if the server offers it, certificate not verified (no sslmode: asyncpg's default, prefer)",
    "disable": "no TLS (sslmode=disable)",
    "allow": "TLS only if the server insists, certificate not verified (sslmode=allow)",
    "prefer": "TLS if the server offers it, certificate not verified (sslmode=prefer)",
    "require": "TLS without certificate verification (sslmode=require)",
}
_CHANNEL_BINDING_NOTE: Final = (
    "channel_binding=require: asyncpg cannot bind channels, so the certificate is verified instead"
)


@dataclasses.dataclass(frozen=True)
class TlsPolicy:
    """The TLS a PostgreSQL URL asks for, as libpq would read it (see the module docstring)."""

    mode: str | None = None  # the sslmode in force; None: not given (asyncpg's default, prefer)
    rootcert: str | None = None  # a CA file, "system", or None (PGSSLROOTCERT or ~/.postgresql/root.crt)
    asked: str | None = None  # the sslmode the URL gave, when it differs from `mode`
    channel_binding: bool = False  # channel_binding=require raised the mode to verify-full

    @property
    def verified(self) -> bool:
        """Whether the server's certificate is checked against a trusted CA."""
        return self.mode in ("verify-ca", "verify-full")

    def ssl_option(self) -> str | bool | ssl.SSLContext | None:
        """asyncpg's `ssl` argument; None to leave asyncpg's default. Raise `DatabaseURLError` for a bad CA file."""
        if self.mode is None:
            return None
        if self.mode == "disable":
            return False
        if self.rootcert is None:
            return self.mode  # asyncpg then reads PGSSLROOTCERT or ~/.postgresql/root.crt, as libpq does
        return self._context()

    def _context(self) -> ssl.SSLContext:
        rootcert = self.rootcert or ""
        # The system's store is what OpenSSL's variables name at the time.
        store = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")) if rootcert == _SYSTEM else None
        try:
            return _verifying_context(rootcert, self.mode == "verify-full", store)
        except (OSError, ssl.SSLError) as error:
            raise DatabaseURLError(
                f"has sslrootcert={quoted(rootcert, 80)}, which cannot be loaded ({error})",
                "point sslrootcert at the CA certificate file, or use sslrootcert=system",
            ) from None

    @property
    def trusted(self) -> str:
        """Whom the certificate is checked against, for messages."""
        if self.rootcert == _SYSTEM:
            return "the system's CAs"
        return self.rootcert or "~/.postgresql/root.crt (or PGSSLROOTCERT)"

    def describe(self, host: str) -> str:
        """The TLS in force, in one phrase: the startup log and `inv env-check` show it."""
        if host.startswith("/"):
            return f"no TLS: a Unix socket in {host}"
        if not self.verified:
            return _UNVERIFIED_TEXT[self.mode]
        if self.mode == "verify-ca":
            why = f"sslmode={self.asked} with sslrootcert, as in libpq" if self.asked else "sslmode=verify-ca"
            return f"TLS, certificate verified against {self.trusted}; host name not checked ({why})"
        why = _CHANNEL_BINDING_NOTE if self.channel_binding else "sslmode=verify-full"
        return f"TLS, certificate verified against {self.trusted} for host {host} ({why})"


@functools.lru_cache(maxsize=16)
def _verifying_context(
    rootcert: str, check_hostname: bool, store: tuple[str | None, str | None] | None
) -> ssl.SSLContext:
    """Made once per process: loading the system's CAs takes tens of milliseconds, and the URL is parsed
    several times at startup. asyncpg only reads the context, so one serves every connection.
    `store` is only part of the key: the system's CA variables when the context was made."""
    context = ssl.create_default_context(cafile=None if rootcert == _SYSTEM else rootcert)
    context.check_hostname = check_hostname
    return context


def parse_tls(query: dict[str, str], hostname: str) -> TlsPolicy:
    """Take sslmode (or ssl), sslrootcert and channel_binding out of `query`; raise `DatabaseURLError` on nonsense."""
    mode = _ssl_mode(query, hostname)
    rootcert = query.pop("sslrootcert", None) or None
    if _channel_binding(query):
        if mode == "disable":
            raise DatabaseURLError(
                "sets channel_binding=require with sslmode=disable",
                "channel binding needs TLS: remove sslmode=disable (or channel_binding=require)",
            )
        _check_system_rootcert(mode, rootcert)
        return TlsPolicy("verify-full", rootcert or _SYSTEM, channel_binding=True)
    if rootcert is None:
        return TlsPolicy(mode)
    if rootcert == _SYSTEM:
        _check_system_rootcert(mode, rootcert)
        return TlsPolicy("verify-full", rootcert)
    if mode == "require":  # libpq: with a root certificate, require checks the CA
        return TlsPolicy("verify-ca", rootcert, asked=mode)
    if mode not in ("verify-ca", "verify-full"):
        raise DatabaseURLError(
            f"sets sslrootcert {'without sslmode' if mode is None else f'with sslmode={mode}'}",
            "add sslmode=verify-full (or verify-ca)",
        )
    return TlsPolicy(mode, rootcert)


def _ssl_mode(query: dict[str, str], hostname: str) -> str | None:
    if "sslmode" in query and "ssl" in query:
        raise DatabaseURLError("sets both sslmode and ssl", "keep sslmode= and remove ssl=")
    raw = query.pop("sslmode", None)
    raw = query.pop("ssl", None) if raw is None else raw
    if raw is None:
        # Neon accepts TLS connections only; say so instead of failing the handshake.
        return "require" if hostname.endswith(".neon.tech") else None
    mode = _SSL_ALIASES.get(raw.lower(), raw.lower())
    if mode not in SSL_MODES:
        raise DatabaseURLError(f"has sslmode={quoted(raw)}", f"use one of {', '.join(sorted(SSL_MODES))}")
    return mode


def _channel_binding(query: dict[str, str]) -> bool:
    binding = query.pop("channel_binding", "prefer")
    if binding not in _CHANNEL_BINDING:
        raise DatabaseURLError(
            f"has channel_binding={quoted(binding)}", "use channel_binding=require, prefer or disable"
        )
    return binding == "require"


def _check_system_rootcert(mode: str | None, rootcert: str | None) -> None:
    # libpq 16 refuses these too: trusting every public CA is only safe when the host name is checked.
    if rootcert == _SYSTEM and mode not in (None, "verify-full"):
        raise DatabaseURLError(
            f"sets sslrootcert=system with sslmode={mode}",
            "use sslmode=verify-full with sslrootcert=system (as libpq does), or remove sslrootcert",
        )


def certificate_failure(
    error: ssl.SSLCertVerificationError, tls: TlsPolicy, host: str, port: int
) -> DatabaseUnreachableError:
    """The named, permanent failure for a server certificate that does not verify."""
    where = f"{host}:{port}"
    detail = error.verify_message or str(error)
    wrong_name = error.verify_code in _NAME_MISMATCH
    problem = f"is not issued for {host!r}" if wrong_name else f"does not verify against {tls.trusted}"
    if tls.channel_binding:
        return DatabaseUnreachableError(
            "DB_TLS_CHANNEL_BINDING_UNVERIFIED",
            f"channel_binding=require, and the TLS certificate of {where} {problem} ({detail}): "
            "refused, as a man in the middle would be",
            _CHANNEL_BINDING_FIX[wrong_name],
            transient=False,
        )
    if wrong_name:
        return DatabaseUnreachableError(
            "DB_TLS_HOST_MISMATCH",
            f"the TLS certificate of {where} {problem} ({detail})",
            "use the host name the certificate was issued for (copy the URL again from your provider; "
            "an IP address or an alias does not match), or sslmode=verify-ca to check the CA only",
            transient=False,
        )
    return DatabaseUnreachableError(
        "DB_TLS_VERIFY_FAILED",
        f"the TLS certificate of {where} does not verify ({detail}; trusted: {tls.trusted})",
        "point sslrootcert at the CA file that signed the server's certificate "
        "(sslrootcert=system for a public CA such as Neon's); sslmode=require encrypts without verifying",
        transient=False,
    )


def tls_unavailable_fix(tls: TlsPolicy) -> str:
    """The fix for a server without TLS when the URL requires it."""
    if tls.channel_binding:
        return (
            "channel_binding=require needs TLS: for a local server remove it (and any sslmode=require), "
            "or enable ssl in postgresql.conf"
        )
    return "remove sslmode=require for a local server, or enable ssl in postgresql.conf"


_CHANNEL_BINDING_FIX: Final = {
    False: "asyncpg cannot bind channels, so the certificate must verify instead: for a server with its own CA "
    "add sslrootcert=/path/to/ca.pem; with a public CA install the system's CA list (ca-certificates) "
    "and check that no proxy intercepts TLS. Removing channel_binding=require would connect without this protection",
    True: "asyncpg cannot bind channels, so the certificate must name the host instead: use the host name "
    "your provider gives (copy the URL again; an IP address or an alias does not match). "
    "Removing channel_binding=require would connect without this protection",
}
