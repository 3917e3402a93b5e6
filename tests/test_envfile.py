"""The `.env` lint: every finding from a real file in a temporary folder, never a traceback."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from backend.diagnostics.envfile import lint_env_file
from backend.diagnostics.results import Result, is_secret_name
from backend.settings import SETTING_NAMES, load_settings

EXAMPLE = "".join(f"{name}=\n" for name in SETTING_NAMES)
Finding = tuple[str, str, str]


def lint(
    folder: Path, content: str | bytes, environ: Mapping[str, str] | None = None, example: str = EXAMPLE
) -> list[Result]:
    env_file = folder / ".env"
    if isinstance(content, bytes):
        env_file.write_bytes(content)
    else:
        env_file.write_text(content, newline="")
    (folder / ".env.example").write_text(example)
    return lint_env_file(env_file, folder / ".env.example", environ or {}, SETTING_NAMES)


def findings(results: list[Result]) -> list[Finding]:
    return [(result.status, result.code, result.message) for result in results]


def test_well_formed_file_is_one_ok_line(tmp_path: Path) -> None:
    results = lint(tmp_path, "# comment\n\nPORT=9000\nDATABASE_URL='sqlite:///x.db'\nLOG_LEVEL=\n")

    assert findings(results) == [("ok", "OK", f"{tmp_path / '.env'}: 3 setting(s), well-formed")]


def test_windows_line_endings_are_well_formed(tmp_path: Path) -> None:
    results = lint(tmp_path, "PORT=9000\r\nWORKERS=2\r\n")

    assert [result.code for result in results] == ["OK"]


def test_missing_file_is_a_warning_that_defaults_apply(tmp_path: Path) -> None:
    results = lint_env_file(tmp_path / ".env", tmp_path / ".env.example", {}, SETTING_NAMES)

    assert findings(results) == [
        ("warn", "ENV_FILE_MISSING", f"no .env at {tmp_path / '.env'}: every setting has its default")
    ]
    assert results[0].fix == "to change a setting, `cp .env.example .env` and edit it"


def test_directory_instead_of_file_is_unreadable(tmp_path: Path) -> None:
    (tmp_path / ".env").mkdir()

    results = lint_env_file(tmp_path / ".env", tmp_path / ".env.example", {}, SETTING_NAMES)

    assert findings(results) == [
        ("fail", "ENV_FILE_UNREADABLE", f"{tmp_path / '.env'} cannot be read: it is not a regular file (a directory?)")
    ]


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    results = lint(tmp_path, b"PORT=9000\nDATABASE_URL=\xff\xfe\x00garbage\n")

    assert findings(results) == [
        ("fail", "ENV_FILE_NOT_TEXT", f"{tmp_path / '.env'} is not a text file: byte 0xff on line 2 is not UTF-8 text")
    ]


def test_nul_byte_is_binary_data(tmp_path: Path) -> None:
    results = lint(tmp_path, b"PORT=9000\n\nWORKERS=1\x00\n")

    assert findings(results) == [
        ("fail", "ENV_FILE_NOT_TEXT", f"{tmp_path / '.env'} is not a text file: line 3 holds a NUL byte (binary data)")
    ]


def test_missing_final_newline_is_a_warning(tmp_path: Path) -> None:
    results = lint(tmp_path, "PORT=9000")

    assert findings(results) == [("warn", "ENV_NO_FINAL_NEWLINE", f"{tmp_path / '.env'} does not end with a newline")]


def test_duplicate_key_names_both_lines_and_the_winner(tmp_path: Path) -> None:
    results = lint(tmp_path, "PORT=9000\nWORKERS=2\nPORT=9001\n")

    assert findings(results) == [
        ("warn", "ENV_DUPLICATE_KEY", "PORT is set on line 1 and again on line 3; line 3 wins"),
    ]
    assert load_settings(tmp_path / ".env", create_dev_secret=False).port == 9001


def test_spaces_around_equals_are_a_warning(tmp_path: Path) -> None:
    results = lint(tmp_path, "PORT = 9000\nWORKERS= 2\nLOG_LEVEL =debug\n")

    assert findings(results) == [
        ("warn", "ENV_SPACES_AROUND_EQUALS", "line 1 has spaces around '=' (PORT = ...)"),
        ("warn", "ENV_SPACES_AROUND_EQUALS", "line 2 has spaces around '=' (WORKERS = ...)"),
        ("warn", "ENV_SPACES_AROUND_EQUALS", "line 3 has spaces around '=' (LOG_LEVEL = ...)"),
    ]


def test_unbalanced_quotes_fail_and_matching_quotes_pass(tmp_path: Path) -> None:
    content = "CORS_ORIGINS=\"http://localhost:3000\nLOG_LEVEL=debug'\nHOST=\"127.0.0.1\"\nPORT='9000'\n"

    results = lint(tmp_path, content)

    assert findings(results) == [
        (
            "fail",
            "ENV_UNBALANCED_QUOTES",
            "line 1: CORS_ORIGINS's value starts with \" but does not end with it, "
            "so the quote is kept as part of the value",
        ),
        (
            "fail",
            "ENV_UNBALANCED_QUOTES",
            "line 2: LOG_LEVEL's value ends with ' but does not start with it, "
            "so the quote is kept as part of the value",
        ),
    ]


def test_lowercase_setting_fails_because_it_is_ignored(tmp_path: Path) -> None:
    results = lint(tmp_path, "database_url=postgresql://u@h/db\nmy_tool=1\n")

    assert findings(results) == [
        (
            "fail",
            "ENV_LOWERCASE_KEY",
            "line 1 sets database_url, but names are case-sensitive: the backend reads DATABASE_URL",
        ),
        ("warn", "ENV_LOWERCASE_KEY", "line 2 sets my_tool, but names are case-sensitive: the backend reads MY_TOOL"),
    ]
    assert load_settings(tmp_path / ".env", create_dev_secret=False).database_url == "sqlite:///var/todo.sqlite3"


def test_export_prefix_fails_because_decouple_ignores_the_line(tmp_path: Path) -> None:
    results = lint(tmp_path, "export PORT=9000\n")

    assert findings(results) == [
        ("fail", "ENV_EXPORT_PREFIX", "line 1 starts with 'export', so python-decouple reads no PORT")
    ]
    assert results[0].fix == "remove 'export ': write PORT=..."
    assert load_settings(tmp_path / ".env", create_dev_secret=False).port == 8000


def test_key_that_is_not_a_variable_name_fails(tmp_path: Path) -> None:
    results = lint(tmp_path, "DATABASE URL=sqlite:///x.db\n")

    assert findings(results) == [
        (
            "fail",
            "ENV_KEY_INVALID",
            "line 1 has the key 'DATABASE URL', which is not a variable name, so it is ignored",
        )
    ]


def test_line_without_equals_is_reported_without_its_content(tmp_path: Path) -> None:
    results = lint(tmp_path, "PORT=9000\nhunter2-my-password\n")

    assert findings(results) == [("warn", "ENV_LINE_INVALID", "line 2 has no '=', so it is ignored")]


def test_inline_comment_is_kept_in_the_value(tmp_path: Path) -> None:
    results = lint(tmp_path, "WORKERS=2 # two workers\nDATABASE_URL=sqlite:///x.db#not-a-comment\n")

    assert findings(results) == [
        (
            "warn",
            "ENV_INLINE_COMMENT",
            "line 1: WORKERS's value includes a '# comment' (from column 11), "
            "which python-decouple keeps as part of the value",
        )
    ]
    assert "two workers" not in results[0].message


def test_ten_megabyte_value_is_reported(tmp_path: Path) -> None:
    results = lint(tmp_path, "CORS_ORIGINS=" + "x" * 10_000_000 + "\n")

    assert findings(results) == [
        ("warn", "ENV_VALUE_TOO_LONG", "line 1: CORS_ORIGINS's value is 10000000 characters long"),
    ]


def test_typo_of_a_setting_fails_with_did_you_mean(tmp_path: Path) -> None:
    results = lint(tmp_path, "DATABSE_URL=postgresql://u:pw@h/db\nBETTER_AUTH_SECRT=x\n")

    assert findings(results) == [
        ("fail", "ENV_KEY_TYPO", "line 1 sets DATABSE_URL, which no setting is called; did you mean DATABASE_URL?"),
        (
            "fail",
            "ENV_KEY_TYPO",
            "line 2 sets BETTER_AUTH_SECRT, which no setting is called; did you mean BETTER_AUTH_SECRET?",
        ),
    ]
    assert results[0].fix == "rename it to DATABASE_URL"


def test_unknown_key_without_a_close_match_is_a_warning(tmp_path: Path) -> None:
    results = lint(tmp_path, "NEXT_PUBLIC_APP_NAME=todo\n")

    assert findings(results) == [
        (
            "warn",
            "ENV_KEY_UNKNOWN",
            "line 1 sets NEXT_PUBLIC_APP_NAME, which .env.example does not list; the backend ignores it",
        )
    ]


def test_setting_missing_from_the_example_is_a_warning(tmp_path: Path) -> None:
    example = "".join(f"{name}=\n" for name in SETTING_NAMES if name != "WORKERS")

    results = lint(tmp_path, "WORKERS=2\n", example=example)

    assert findings(results) == [
        ("warn", "ENV_KEY_NOT_IN_EXAMPLE", "line 1 sets WORKERS, which .env.example does not list")
    ]


def test_exported_variable_shadows_the_file(tmp_path: Path) -> None:
    results = lint(tmp_path, "PORT=9000\nWORKERS=2\n", environ={"PORT": "8080", "WORKERS": "2"})

    assert findings(results) == [
        ("warn", "ENV_SHADOWED", "PORT in .env (line 1, '9000') is overridden by the exported PORT='8080'")
    ]


def test_exported_empty_variable_shadows_the_file_with_the_default(tmp_path: Path) -> None:
    results = lint(tmp_path, "PORT=9000\n", environ={"PORT": ""})

    assert findings(results) == [
        (
            "warn",
            "ENV_SHADOWED_BY_EMPTY",
            "PORT is exported empty, so its value in .env (line 1) is ignored and the default is used",
        )
    ]
    assert results[0].fix == "`unset PORT` in your shell (or remove it from the environment that starts the backend)"


@pytest.mark.parametrize(
    ("key", "value", "exported", "shown"),
    [
        ("BETTER_AUTH_SECRET", "a" * 40, "b" * 40, "'***'"),
        ("DATABASE_URL", "postgresql://u:filepw@h/db", "postgresql://u:envpw@h/db", None),
    ],
)
def test_shadowed_secrets_are_never_shown(
    tmp_path: Path, key: str, value: str, exported: str, shown: str | None
) -> None:
    results = lint(tmp_path, f"{key}={value}\n", environ={key: exported})

    message = results[0].message
    assert results[0].code == "ENV_SHADOWED"
    assert "a" * 40 not in message
    assert "b" * 40 not in message
    assert "filepw" not in message
    assert "envpw" not in message
    if shown is not None:
        assert message.endswith(f"the exported {key}={shown}")


def test_garbage_file_gives_findings_not_a_traceback(tmp_path: Path) -> None:
    content = '===\n=\n\'\n"""\n#\nexport\n  \t \nA=B=C\n\\x00\n' + "\u2028" * 3 + "\n"

    results = lint(tmp_path, content)

    assert {result.code for result in results} <= {"ENV_KEY_INVALID", "ENV_LINE_INVALID", "ENV_KEY_UNKNOWN"}
    assert [result.message for result in results if result.code == "ENV_KEY_UNKNOWN"] == [
        "line 8 sets A, which .env.example does not list; the backend ignores it"
    ]


# Nothing typed as a value is printed when a line is malformed (issue 14, item 3).

PASTED = "Zq3xR7mK9vLp2Wd8sT4yB6nH1jF5cE0aG+u/Yo=="  # what `openssl rand -base64 32` prints


def assert_not_printed(results: list[Result], *values: str) -> None:
    text = "\n".join(f"{result.message} {result.fix}" for result in results)
    for value in values:
        for piece in (value, value[:8], value[-8:]):
            assert piece not in text, text


@pytest.mark.parametrize("separator", [": ", ":", " ", "\t"], ids=["colon-space", "colon", "space", "tab"])
def test_secret_written_with_a_colon_or_space_is_named_without_its_value(tmp_path: Path, separator: str) -> None:
    results = lint(tmp_path, f"PORT=9000\nBETTER_AUTH_SECRET{separator}{PASTED}\n")

    shown = "':'" if separator.startswith(":") else "a space" if separator == " " else "a tab"
    assert findings(results) == [
        (
            "fail",
            "ENV_KEY_INVALID",
            f"line 2 is not NAME=value: BETTER_AUTH_SECRET is followed by {shown}, so the line is ignored",
        )
    ]
    assert results[0].fix == "write BETTER_AUTH_SECRET=value, with '=' and no space before it"
    assert_not_printed(results, PASTED)


def test_setting_with_a_colon_and_no_equals_sign_is_named_without_its_value(tmp_path: Path) -> None:
    results = lint(tmp_path, "DATABASE_URL: postgresql://app:hunter2hunter2@db.example.com/todo\n")

    assert findings(results) == [
        ("warn", "ENV_LINE_INVALID", "line 1 has no '=': DATABASE_URL is followed by ':', so the line is ignored")
    ]
    assert results[0].fix == "write DATABASE_URL=value, with '=' and no space before it"
    assert_not_printed(results, "hunter2hunter2", "db.example.com")


@pytest.mark.parametrize(
    "value",
    [PASTED, "kf83jdn2ms9aq0pzx7wqkf83jdn2ms9a=", "AKIAIOSFODNN7EXAMPLE1=", "sk_live_51HqLyjWDarjtT1zdp7dc="],
    ids=["base64", "lowercase-hex-ish", "uppercase-key-id", "stripe-like"],
)
def test_value_pasted_alone_on_a_line_is_never_printed(tmp_path: Path, value: str) -> None:
    results = lint(tmp_path, f"BETTER_AUTH_SECRET=\n{value}\n")

    assert results, "a value alone on a line is a finding"
    assert all(result.status != "ok" for result in results)
    assert_not_printed(results, value.rstrip("="))


def test_value_pasted_alone_is_reported_as_such(tmp_path: Path) -> None:
    results = lint(tmp_path, "kf83jdn2ms9aq0pzx7wqkf83jdn2ms9a=\n")

    assert findings(results) == [
        (
            "warn",
            "ENV_LOWERCASE_KEY",
            "line 1 sets a name that is not in upper case and does not look like a setting's name "
            "(not shown: it may be a value pasted alone), so the backend reads nothing from it",
        )
    ]
    assert results[0].fix == "write the setting's name in upper case before '=', e.g. BETTER_AUTH_SECRET=value"


@pytest.mark.parametrize("key", ["OPENAI_API_KEY", "RESEND_API_KEY", "DB_PASS", "WORKERS", "SENTRY_DSN"])
def test_inline_comment_and_unbalanced_quote_never_print_the_value(tmp_path: Path, key: str) -> None:
    value = "sk-proj-4f9TzQ81mXcVb2Lr"
    results = lint(tmp_path, f"{key}={value} # prod key\n{key}='{value}\n{key}={value}\"\n")

    assert [(result.code, result.message) for result in results if result.code != "ENV_DUPLICATE_KEY"][:3] == [
        (
            "ENV_INLINE_COMMENT",
            f"line 1: {key}'s value includes a '# comment' (from column {len(key) + len(value) + 3}), "
            "which python-decouple keeps as part of the value",
        ),
        (
            "ENV_UNBALANCED_QUOTES",
            f"line 2: {key}'s value starts with ' but does not end with it, so the quote is kept as part of the value",
        ),
        (
            "ENV_UNBALANCED_QUOTES",
            f"line 3: {key}'s value ends with \" but does not start with it, so the quote is kept as part of the value",
        ),
    ]
    assert_not_printed(results, value, "prod key")


@pytest.mark.parametrize(
    "name",
    [
        "BETTER_AUTH_SECRET",
        "OPENAI_API_KEY",
        "RESEND_API_KEY",
        "STRIPE_SECRET_KEY",
        "DB_PASS",
        "PGPASSWORD",
        "MYSQL_PWD",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "AWS_SECRET_ACCESS_KEY",
        "GITHUB_TOKEN",
        "SENTRY_DSN",
        "BASIC_AUTH",
        "HTTP_AUTHORIZATION",
        "JWT_PRIVATE_KEY",
        "SIGNING_KEYS",
        "APIKEY",
        "SESSION_COOKIE_SALT",
        "openai_api_key",
    ],
)
def test_secret_names_are_recognised(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name", ["PORT", "BETTER_AUTH_URL", "BETTER_AUTH_JWKS_URL", "DATABASE_URL", "MONKEY_COUNT", "KEYBOARD_LAYOUT"]
)
def test_public_names_are_not_secret(name: str) -> None:
    assert not is_secret_name(name)


@pytest.mark.parametrize("key", ["OPENAI_API_KEY", "RESEND_API_KEY", "DB_PASS", "SENTRY_DSN"])
def test_shadowed_api_keys_and_passwords_are_masked(tmp_path: Path, key: str) -> None:
    results = lint(tmp_path, f"{key}=file-value-123456\n", environ={key: "env-value-654321"})

    shadowed = [result for result in results if result.code == "ENV_SHADOWED"]
    assert [result.message for result in shadowed] == [
        f"{key} in .env (line 1, '***') is overridden by the exported {key}='***'"
    ]
    assert_not_printed(results, "file-value-123456", "env-value-654321")


def test_export_prefix_before_a_colon_names_only_the_setting(tmp_path: Path) -> None:
    results = lint(tmp_path, f"export BETTER_AUTH_SECRET: {PASTED}\n")

    assert findings(results) == [
        (
            "fail",
            "ENV_KEY_INVALID",
            "line 1 is not NAME=value: BETTER_AUTH_SECRET is followed by ':', so the line is ignored",
        )
    ]
    assert_not_printed(results, PASTED)


def test_unknown_name_written_with_a_colon_gets_the_general_fix(tmp_path: Path) -> None:
    results = lint(tmp_path, "OPENAI_API_KEY: sk-proj-4f9TzQ81mXcVb2Lr==\n")

    assert findings(results) == [
        (
            "fail",
            "ENV_KEY_INVALID",
            "line 1 is not NAME=value: OPENAI_API_KEY is followed by ':', so the line is ignored",
        )
    ]
    assert results[0].fix == "a line is NAME=value: letters, digits and _, then '=' (not ':' or a space)"
    assert_not_printed(results, "sk-proj-4f9TzQ81mXcVb2Lr")


def test_key_holding_no_name_is_reported_without_it(tmp_path: Path) -> None:
    results = lint(tmp_path, f"{PASTED}\nAKIAIOSFODNN7EXAMPLE1=\n")

    assert findings(results) == [
        (
            "fail",
            "ENV_KEY_INVALID",
            "line 1 has a key that is not a variable name (not shown: it may hold a value), so it is ignored",
        ),
        (
            "warn",
            "ENV_KEY_UNKNOWN",
            "line 2 sets a name that .env.example does not list and that does not look like a name "
            "(not shown: it may be a value pasted alone); the backend ignores it",
        ),
    ]
