"""DATABASE_URL parsing: what people paste becomes what `databases` + asyncpg need (no database here)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from databases import DatabaseURL

from backend.dbtls import TlsPolicy
from backend.dburl import DatabaseTarget, mask_url, parse_database_url
from backend.errors import DatabaseURLError
from backend.settings import ROOT
from tests.support.certs import CertificateAuthority

NEON = "postgresql://u:p@ep-cool-123.us-east-2.aws.neon.tech/neondb?sslmode=require&channel_binding=require"
NEON_POOLER = NEON.replace("ep-cool-123.", "ep-cool-123-pooler.")
ENCODE_FIX = (
    "percent-encode special characters in the user name and password (@ as %40, : as %3A, / as %2F, # as %23, ? as %3F)"
)
SUPPORTED = (
    "remove it (supported: sslmode, sslrootcert, channel_binding, connect_timeout, "
    "application_name, options, host, target_session_attrs, statement_cache_size, pgbouncer)"
)


def refused(raw: str) -> DatabaseURLError:
    with pytest.raises(DatabaseURLError) as caught:
        parse_database_url(raw)
    return caught.value


def options_of(query: str, host: str = "db.example.com") -> dict[str, object]:
    return parse_database_url(f"postgresql://u:p@{host}/todo?{query}").options


def assert_verifies(option: object, *, check_hostname: bool) -> None:
    """`option` is an SSL context that requires a verified certificate (and checks the host name, or not)."""
    assert isinstance(option, ssl.SSLContext)
    assert option.verify_mode == ssl.CERT_REQUIRED
    assert option.check_hostname is check_hostname


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return CertificateAuthority(tmp_path_factory.mktemp("ca")).path


# PostgreSQL schemes and parts


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+asyncpg", "PostgreSQL"])
def test_postgres_schemes_normalize_to_postgresql_url_keeping_every_part(scheme: str) -> None:
    target = parse_database_url(f"{scheme}://alice:s3cret@db.example.com:5433/todo")

    assert target.dialect == "postgresql"
    assert target.url == "postgresql://alice:s3cret@db.example.com:5433/todo"
    assert (target.user, target.host, target.port, target.database) == ("alice", "db.example.com", 5433, "todo")
    assert target.options == {}
    assert target.pooled is False
    assert target.sqlite_path is None
    assert target.display == "alice@db.example.com:5433/todo"


def test_url_for_databases_has_no_query_string() -> None:
    target = parse_database_url("postgres://alice:s3cret@db.example.com/todo?sslmode=require&application_name=todo")

    assert target.url == "postgresql://alice:s3cret@db.example.com/todo"
    assert "?" not in target.url


def test_port_defaults_to_5432_and_user_may_be_absent() -> None:
    target = parse_database_url("postgresql://db.example.com/todo")

    assert target.port == 5432
    assert target.user == ""
    assert target.display == "(default user)@db.example.com:5432/todo"


def test_ipv6_host_is_understood() -> None:
    target = parse_database_url("postgresql://u:p@[::1]:5433/todo")

    assert (target.host, target.port) == ("::1", 5433)
    assert target.url == "postgresql://u:p@[::1]:5433/todo"


def test_host_from_query_string_serves_a_unix_socket() -> None:
    target = parse_database_url("postgresql:///todo?host=/var/run/postgresql")

    assert target.host == "/var/run/postgresql"
    assert target.options == {"host": "/var/run/postgresql"}
    assert target.url == "postgresql://localhost/todo"


def test_percent_encoded_password_user_and_database_survive() -> None:
    target = parse_database_url("postgresql://me%40corp:p%40ss%2Fw%3Ad@db.example.com/my%20db")

    assert target.url == "postgresql://me%40corp:p%40ss%2Fw%3Ad@db.example.com/my%20db"
    assert target.user == "me@corp"
    assert target.database == "my db"
    parsed = DatabaseURL(target.url)  # what `databases` hands to asyncpg
    assert (parsed.username, parsed.password, parsed.database) == ("me@corp", "p@ss/w:d", "my db")


def test_target_repr_never_shows_the_password() -> None:
    target = parse_database_url("postgresql://u:hunter2@db.example.com/todo?sslmode=require")

    assert "hunter2" not in repr(target)
    assert "url='postgresql://u:***@db.example.com/todo'" in repr(target)
    assert "hunter2" not in target.display


# Neon, TLS and pooling


def test_neon_url_with_channel_binding_verifies_the_certificate_for_its_host() -> None:
    target = parse_database_url(NEON)

    assert target.url == "postgresql://u:p@ep-cool-123.us-east-2.aws.neon.tech/neondb"
    assert list(target.options) == ["ssl"]
    assert_verifies(target.options["ssl"], check_hostname=True)
    assert target.tls == TlsPolicy("verify-full", "system", channel_binding=True)
    assert "channel_binding" not in target.url
    assert target.pooled is False
    assert target.display == "u@ep-cool-123.us-east-2.aws.neon.tech:5432/neondb"


def test_neon_pooler_host_is_a_pooler_that_keeps_named_statements() -> None:
    target = parse_database_url(NEON_POOLER)

    assert target.url == "postgresql://u:p@ep-cool-123-pooler.us-east-2.aws.neon.tech/neondb"
    assert "statement_cache_size" not in target.options
    assert_verifies(target.options["ssl"], check_hostname=True)
    assert target.pooled is True
    assert target.pooler == "Neon's -pooler host"
    assert target.named_statements is True


@pytest.mark.parametrize(
    ("port", "pooler"),
    [
        (6543, "port 6543: Supabase's transaction pooler"),
        (6432, "port 6432: PgBouncer's default"),
        (25061, "port 25061: DigitalOcean's connection pooler"),
    ],
)
def test_transaction_pooler_ports_start_with_unnamed_statements(port: int, pooler: str) -> None:
    target = parse_database_url(f"postgresql://u:p@db.example.com:{port}/todo")

    assert target.pooler == pooler
    assert target.named_statements is False
    assert target.options == {}


def test_supabase_pooler_host_is_a_transaction_pooler_except_in_session_mode() -> None:
    transaction = parse_database_url("postgres://u.ref:p@aws-0-eu-central-1.pooler.supabase.com:6543/postgres")
    session = parse_database_url("postgres://u.ref:p@aws-0-eu-central-1.pooler.supabase.com:5432/postgres")

    assert transaction.pooler == "Supabase's pooler host"
    assert transaction.named_statements is False
    assert session.pooled is False
    assert session.named_statements is True


def test_pgbouncer_false_says_there_is_none_on_a_pooler_port() -> None:
    target = parse_database_url("postgresql://u:p@db.example.com:6432/todo?pgbouncer=false")

    assert target.pooled is False
    assert target.named_statements is True
    assert target.options == {}


def test_pgbouncer_that_is_not_true_or_false_is_refused() -> None:
    error = refused("postgresql://u:p@db.example.com/todo?pgbouncer=yes")

    assert (error.reason, error.fix) == ("has pgbouncer='yes'", "use pgbouncer=true (or false)")


def test_neon_host_without_sslmode_still_requires_tls() -> None:
    target = parse_database_url("postgres://u:p@ep-cool-123.eu-central-1.aws.neon.tech/neondb")

    assert target.options == {"ssl": "require"}


def test_explicit_sslmode_disable_wins_even_on_neon() -> None:
    target = parse_database_url("postgres://u:p@ep-cool-123.eu-central-1.aws.neon.tech/neondb?sslmode=disable")

    assert target.options == {"ssl": False}


def test_pgbouncer_true_starts_with_unnamed_statements_on_any_host() -> None:
    target = parse_database_url("postgresql://u:p@db.example.com/todo?pgbouncer=true")

    assert options_of("pgbouncer=true") == {}
    assert target.pooled is True
    assert target.pooler == "?pgbouncer=true"
    assert target.named_statements is False


def test_other_hosts_get_no_tls_option_unless_asked() -> None:
    assert parse_database_url("postgresql://u:p@db.example.com/todo").options == {}


@pytest.mark.parametrize(
    ("query", "ssl_option"),
    [
        ("sslmode=disable", False),
        ("sslmode=allow", "allow"),
        ("sslmode=prefer", "prefer"),
        ("sslmode=require", "require"),
        ("sslmode=REQUIRE", "require"),
        ("sslmode=verify-ca", "verify-ca"),
        ("sslmode=verify-full", "verify-full"),
        ("ssl=true", "require"),
        ("ssl=1", "require"),
        ("ssl=false", False),
        ("ssl=0", False),
    ],
)
def test_sslmode_becomes_the_asyncpg_ssl_option(query: str, ssl_option: object) -> None:
    assert options_of(query) == {"ssl": ssl_option}


def test_sslrootcert_system_with_verify_full_builds_a_checking_context() -> None:
    option = options_of("sslmode=verify-full&sslrootcert=system")["ssl"]

    assert_verifies(option, check_hostname=True)


def test_sslrootcert_file_with_verify_ca_does_not_check_the_host_name(ca_file: Path) -> None:
    option = options_of(f"sslmode=verify-ca&sslrootcert={ca_file}")["ssl"]

    assert_verifies(option, check_hostname=False)
    assert isinstance(option, ssl.SSLContext)
    assert option.get_ca_certs()[0]["subject"] == ((("commonName", "Todo Test CA"),),)


def test_sslrootcert_file_with_verify_full_trusts_only_that_ca(ca_file: Path) -> None:
    option = options_of(f"sslmode=verify-full&sslrootcert={ca_file}")["ssl"]

    assert_verifies(option, check_hostname=True)
    assert isinstance(option, ssl.SSLContext)
    assert len(option.get_ca_certs()) == 1


def test_sslrootcert_file_with_require_checks_the_ca_as_libpq_does(ca_file: Path) -> None:
    target = parse_database_url(f"postgresql://u:p@db.example.com/todo?sslmode=require&sslrootcert={ca_file}")

    assert_verifies(target.options["ssl"], check_hostname=False)
    assert target.tls == TlsPolicy("verify-ca", str(ca_file), asked="require")


def test_sslrootcert_system_alone_means_verify_full_as_in_libpq_16() -> None:
    target = parse_database_url("postgresql://u:p@db.example.com/todo?sslrootcert=system")

    assert_verifies(target.options["ssl"], check_hostname=True)
    assert target.tls == TlsPolicy("verify-full", "system")


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer", "require", "verify-ca"])
def test_sslrootcert_system_with_a_weaker_sslmode_is_refused_as_in_libpq_16(mode: str) -> None:
    error = refused(f"postgresql://u:p@db.example.com/todo?sslmode={mode}&sslrootcert=system")

    assert (error.reason, error.fix) == (
        f"sets sslrootcert=system with sslmode={mode}",
        "use sslmode=verify-full with sslrootcert=system (as libpq does), or remove sslrootcert",
    )


def test_unloadable_sslrootcert_is_refused_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"

    error = refused(f"postgresql://u:p@db.example.com/todo?sslmode=verify-full&sslrootcert={missing}")

    assert error.reason.startswith(f"has sslrootcert='{missing}', which cannot be loaded (")
    assert error.fix == "point sslrootcert at the CA certificate file, or use sslrootcert=system"


def test_sslrootcert_file_without_sslmode_is_refused(ca_file: Path) -> None:
    error = refused(f"postgresql://u:p@db.example.com/todo?sslrootcert={ca_file}")

    assert (error.reason, error.fix) == (
        "sets sslrootcert without sslmode",
        "add sslmode=verify-full (or verify-ca)",
    )


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer"])
def test_sslrootcert_file_with_a_mode_that_never_checks_it_is_refused(mode: str, ca_file: Path) -> None:
    error = refused(f"postgresql://u:p@db.example.com/todo?sslmode={mode}&sslrootcert={ca_file}")

    assert error.reason == f"sets sslrootcert with sslmode={mode}"
    assert error.fix == "add sslmode=verify-full (or verify-ca)"


@pytest.mark.parametrize("raw", ["required", "on", ""])
def test_invalid_sslmode_is_refused_naming_it(raw: str) -> None:
    error = refused(f"postgresql://u:p@db.example.com/todo?sslmode={raw}")

    assert error.reason == f"has sslmode={raw!r}"
    assert error.fix == "use one of allow, disable, prefer, require, verify-ca, verify-full"
    assert (
        str(error)
        == f"DATABASE_URL has sslmode={raw!r}. use one of allow, disable, prefer, require, verify-ca, verify-full"
    )
    assert error.code == "DATABASE_URL_INVALID"


def test_sslmode_and_ssl_together_are_refused() -> None:
    error = refused("postgresql://u:p@db.example.com/todo?sslmode=require&ssl=false")

    assert (error.reason, error.fix) == ("sets both sslmode and ssl", "keep sslmode= and remove ssl=")


@pytest.mark.parametrize("binding", ["prefer", "disable"])
def test_channel_binding_prefer_or_disable_is_dropped_leaving_sslmode(binding: str) -> None:
    target = parse_database_url(f"postgresql://u:p@db.example.com/todo?sslmode=require&channel_binding={binding}")

    assert target.options == {"ssl": "require"}
    assert target.tls == TlsPolicy("require")


@pytest.mark.parametrize("mode", ["", "sslmode=allow&", "sslmode=prefer&", "sslmode=require&", "sslmode=verify-ca&"])
def test_channel_binding_require_verifies_against_the_system_cas_for_the_host(mode: str) -> None:
    target = parse_database_url(f"postgresql://u:p@db.example.com/todo?{mode}channel_binding=require")

    assert_verifies(target.options["ssl"], check_hostname=True)
    assert target.tls == TlsPolicy("verify-full", "system", channel_binding=True)
    assert target.tls.verified


def test_channel_binding_require_with_sslrootcert_trusts_that_ca(ca_file: Path) -> None:
    url = f"postgresql://u:p@db.example.com/todo?sslmode=require&sslrootcert={ca_file}&channel_binding=require"

    target = parse_database_url(url)

    assert_verifies(target.options["ssl"], check_hostname=True)
    assert target.tls == TlsPolicy("verify-full", str(ca_file), channel_binding=True)


def test_channel_binding_require_with_sslmode_disable_is_refused() -> None:
    error = refused("postgresql://u:p@db.example.com/todo?sslmode=disable&channel_binding=require")

    assert (error.reason, error.fix) == (
        "sets channel_binding=require with sslmode=disable",
        "channel binding needs TLS: remove sslmode=disable (or channel_binding=require)",
    )


def test_invalid_channel_binding_is_refused() -> None:
    error = refused("postgresql://u:p@db.example.com/todo?channel_binding=always")

    assert (error.reason, error.fix) == (
        "has channel_binding='always'",
        "use channel_binding=require, prefer or disable",
    )


def test_unknown_query_parameter_is_refused_naming_it() -> None:
    error = refused("postgresql://u:p@db.example.com/todo?sslmode=require&foo=bar")

    assert error.reason == "has the query parameter 'foo', which this backend does not understand"
    assert error.fix == SUPPORTED


def test_password_in_query_string_is_refused_without_showing_it() -> None:
    error = refused("postgresql://u@db.example.com/todo?password=hunter2")

    assert error.reason == "has the query parameter 'password', which this backend does not understand"
    assert "hunter2" not in str(error)


@pytest.mark.parametrize(
    "query", ["sslmode=require&sslmode=disable", "application_name=a&application_name=b", "ssl=1&ssl=1"]
)
def test_duplicate_query_parameter_is_refused(query: str) -> None:
    key = query.partition("=")[0]

    error = refused(f"postgresql://u:p@db.example.com/todo?{query}")

    assert (error.reason, error.fix) == (f"sets {key!r} twice", f"keep one {key}= in the query string")


def test_connect_timeout_becomes_the_timeout_option() -> None:
    assert options_of("connect_timeout=10") == {"timeout": 10.0}
    assert options_of("connect_timeout=2.5") == {"timeout": 2.5}


@pytest.mark.parametrize("value", ["soon", "-1", ""])
def test_bad_connect_timeout_is_refused(value: str) -> None:
    error = refused(f"postgresql://u:p@db.example.com/todo?connect_timeout={value}")

    assert (error.reason, error.fix) == (
        f"has connect_timeout={value!r}, not a non-negative number",
        "set connect_timeout to a number",
    )


def test_application_name_and_options_become_server_settings() -> None:
    options = options_of("application_name=todo-api&options=-c%20search_path%3Dapp")

    assert options == {"server_settings": {"application_name": "todo-api", "options": "-c search_path=app"}}


def test_statement_cache_size_bounds_the_statements_kept_and_target_session_attrs_passes_through() -> None:
    target = parse_database_url(
        "postgresql://u:p@db.example.com/todo?statement_cache_size=50&target_session_attrs=read-write"
    )

    assert target.options == {"target_session_attrs": "read-write"}
    assert (target.statement_limit, target.named_statements) == (50, True)


def test_statement_cache_size_0_keeps_no_statement_and_names_none() -> None:
    target = parse_database_url("postgresql://u:p@db.example.com/todo?statement_cache_size=0")

    assert (target.statement_limit, target.named_statements, target.pooled) == (0, False, False)


# Refused URLs: each says what is wrong and what to do


def test_missing_database_name_is_refused() -> None:
    for raw in ("postgresql://u:p@db.example.com", "postgresql://u:p@db.example.com/", "postgresql://u:p@h:5432/?x=1"):
        error = refused(raw)
        assert (error.reason, error.fix) == (
            "names no database",
            "add the database name after the host, e.g. postgresql://user@host:5432/todo",
        )


@pytest.mark.parametrize("raw", ["postgresql://u:p@/todo", "postgresql:///todo", "postgres://:5432/todo"])
def test_missing_host_is_refused(raw: str) -> None:
    error = refused(raw)

    assert (error.reason, error.fix) == ("names no host", "write it as postgresql://user:password@host:5432/dbname")


@pytest.mark.parametrize("port", ["notaport", "0", "65536", "-1", "5432x"])
def test_bad_port_is_refused(port: str) -> None:
    error = refused(f"postgresql://u:p@db.example.com:{port}/todo")

    assert error.reason == "has a port that is not a number from 1 to 65535"
    assert error.fix == f"write the port as digits after the host, e.g. host:5432; {ENCODE_FIX}"


@pytest.mark.parametrize(
    "raw",
    [
        "postgresql://u:12/34@db.example.com/todo",  # a digit-only part would pass for a port
        "postgresql://u:12#34@db.example.com/todo",
        "postgresql://u:12?34@db.example.com/todo",
        "postgresql://u:ab/cd@db.example.com/todo",
    ],
)
def test_unencoded_special_characters_in_password_are_refused(raw: str) -> None:
    error = refused(raw)

    assert error.reason == "has an '@' or '#' after the host, so it cannot be split into its parts"
    assert error.fix == ENCODE_FIX
    assert "34" not in str(error)
    assert "cd" not in str(error)


def test_unbalanced_ipv6_bracket_is_refused() -> None:
    error = refused("postgresql://u:p@[::1/todo")

    assert error.reason == "has an unbalanced '[' or ']'"
    assert error.fix == f"write an IPv6 host as [::1]; {ENCODE_FIX}"


@pytest.mark.parametrize("raw", ["mysql://u:p@db.example.com/todo", "mongodb+srv://x", "http://db.example.com/todo"])
def test_unsupported_scheme_is_refused(raw: str) -> None:
    error = refused(raw)

    scheme = raw.partition("://")[0]
    assert error.reason == f"uses the scheme {scheme!r}, which this backend does not support"
    assert error.fix == "use postgresql://... (PostgreSQL, Neon) or sqlite:///path (embedded)"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("", ""),
        ("db.example.com/todo", "db.example.com/todo"),
        ("u:hunter2@db.example.com/todo", "***@db.example.com/todo"),
        ("postgresql:u:hunter2@db.example.com/todo", "***@db.example.com/todo"),
    ],
)
def test_url_without_scheme_is_refused_without_showing_a_password(raw: str, shown: str) -> None:
    error = refused(raw)

    assert error.reason == f"is {shown!r}, not a URL"
    assert error.fix == "write it as postgresql://user:password@host:5432/dbname or sqlite:///var/todo.sqlite3"
    assert "hunter2" not in str(error)


@pytest.mark.parametrize(
    "raw",
    [
        "mysql://x",
        "postgresql://u:p@h",
        "postgresql://u:p@/db",
        "postgresql://u:p@h:x/db",
        "postgresql://u:p@h/db?sslmode=on",
        "postgresql://u:p@h/db?x=1",
        "postgresql://u:p@h/db?a=1&a=1",
        "sqlite:///:memory:",
        "sqlite:///var/x.db?mode=ro",
        "no scheme",
    ],
)
def test_every_refusal_has_a_reason_a_fix_and_a_code(raw: str) -> None:
    error = refused(raw)

    assert error.reason
    assert error.fix
    assert str(error) == f"DATABASE_URL {error.reason}. {error.fix}"
    assert error.code == "DATABASE_URL_INVALID"


# SQLite


def test_relative_sqlite_path_is_under_the_project_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)

    target = parse_database_url("sqlite:///var/todo.sqlite3")

    path = ROOT / "var" / "todo.sqlite3"
    assert target == DatabaseTarget("sqlite", f"sqlite:///{path}", {}, database="todo.sqlite3", sqlite_path=path)
    assert target.display == f"SQLite file {path}"
    assert DatabaseURL(target.url).database == str(path)


def test_absolute_sqlite_path_is_kept() -> None:
    target = parse_database_url("sqlite:////tmp/x.db")

    assert target.sqlite_path == Path("/tmp/x.db")
    assert target.url == "sqlite:////tmp/x.db"
    assert DatabaseURL(target.url).database == "/tmp/x.db"


def test_aiosqlite_scheme_is_accepted() -> None:
    assert parse_database_url("sqlite+aiosqlite:///var/x.db").sqlite_path == ROOT / "var" / "x.db"


@pytest.mark.parametrize(("encoded", "name"), [("my%20tasks.db", "my tasks.db"), ("a%23b.db", "a#b.db")])
def test_percent_encoded_sqlite_path_is_the_file_databases_opens(encoded: str, name: str) -> None:
    target = parse_database_url(f"sqlite:///var/{encoded}")

    assert target.sqlite_path == ROOT / "var" / name
    assert DatabaseURL(target.url).database == str(ROOT / "var" / name)


@pytest.mark.parametrize("raw", ["sqlite:///:memory:", "sqlite:///", "sqlite:///file:memdb"])
def test_in_memory_sqlite_is_refused(raw: str) -> None:
    error = refused(raw)

    assert (error.reason, error.fix) == (
        "is an in-memory SQLite database, which loses its tables between connections",
        "use a file, e.g. sqlite:///var/todo.sqlite3",
    )


@pytest.mark.parametrize("raw", ["sqlite://", "sqlite://var/todo.sqlite3"])
def test_sqlite_url_without_path_is_refused(raw: str) -> None:
    error = refused(raw)

    assert (error.reason, error.fix) == (
        "is a SQLite URL without a path",
        "write sqlite:///var/todo.sqlite3 (relative to the project) or sqlite:////absolute/path",
    )


@pytest.mark.parametrize("raw", ["sqlite:///var/x.db?timeout=5", "sqlite:///file:x?mode=memory"])
def test_sqlite_query_string_is_refused(raw: str) -> None:
    error = refused(raw)

    assert (error.reason, error.fix) == (
        "has a query string, which SQLite URLs here do not take",
        "remove everything after '?'",
    )


# mask_url


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("postgresql://u:hunter2@h:5432/db?sslmode=require", "postgresql://u:***@h:5432/db?sslmode=require"),
        ("postgresql://u:p%40ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:secret@host:notaport/db", "postgresql://u:***@host:notaport/db"),
        ("postgresql://u:se/cret@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:se#cret@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:se?cret@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:pa:ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://:secret@h/db", "postgresql://:***@h/db"),
        ("postgresql://u:secret@[::1/db", "postgresql://u:***@[::1/db"),
        ("postgresql:u:secret@h/db", "***@h/db"),
        ("postgresql//u:secret@h/db", "***@h/db"),
        ("postgresql://h/db?password=secret&sslmode=require", "postgresql://h/db?password=***&sslmode=require"),
        ("postgresql://h/db?sslpassword=secret", "postgresql://h/db?sslpassword=***"),
        ("https://u:secret@auth.example.com", "https://u:***@auth.example.com"),
    ],
)
def test_mask_url_hides_the_password(raw: str, masked: str) -> None:
    assert mask_url(raw) == masked


@pytest.mark.parametrize(
    "raw",
    [
        "postgresql://u@h/db",
        "postgresql://h:5432/db?sslmode=require",
        "postgresql://[::1]:5432/db",
        "sqlite:///var/todo.sqlite3",
        "sqlite:////tmp/x.db",
        "http://localhost:3000",
        "not a url",
        "",
    ],
)
def test_mask_url_leaves_urls_without_password_alone(raw: str) -> None:
    assert mask_url(raw) == raw


PASSWORD = "Zq7-pw"


@pytest.mark.parametrize(
    "raw",
    [
        f"postgresql://u:{PASSWORD}@h/db",
        f"postgres://u:{PASSWORD}@h:notaport/db",
        f"postgresql://u:{PASSWORD}@/db",
        f"postgresql://u:{PASSWORD}@h",
        f"postgresql://u:{PASSWORD}/x@h/db",
        f"postgresql://u:{PASSWORD}#x@h/db",
        f"postgresql://u:{PASSWORD}@[h/db",
        f"postgresql://u:{PASSWORD}@h/db?sslmode=nope",
        f"postgresql://u:{PASSWORD}@h/db?foo=1",
        f"mysql://u:{PASSWORD}@h/db",
        f"u:{PASSWORD}@h/db",
        f"postgresql:u:{PASSWORD}@h/db",
        f"postgresql://h/db?password={PASSWORD}",
    ],
)
def test_password_is_never_shown_by_mask_url_errors_or_targets(raw: str) -> None:
    try:
        target = parse_database_url(raw)
        shown = f"{target!r} {target.display}"
    except DatabaseURLError as error:
        shown = str(error)

    assert PASSWORD not in shown
    assert PASSWORD not in mask_url(raw)
