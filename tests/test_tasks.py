"""What every invoke task shares: `inv TASK --help` prints its help and does nothing else.

`inv` runs for real in a subprocess; the tasks come from `inv --list`, so a new
task is covered without editing this file.
"""

from __future__ import annotations

import json

import pytest

from tests.support.toolbelt import inv, inv_env, no_env_file


def _task_names() -> list[str]:
    listing = inv("--list", "--list-format", "json", env=inv_env(TODO_ENV_FILE=no_env_file()))
    return [task["name"] for task in json.loads(listing.stdout)["tasks"]]


TASKS = _task_names()


def test_the_tasks_are_found() -> None:
    assert {"run", "free-port", "env-check", "migrate", "token"} <= set(TASKS)


@pytest.mark.parametrize("name", TASKS)
def test_task_help_flag_prints_its_help_and_exits_0(name: str) -> None:
    result = inv(name, "--help", env=inv_env(TODO_ENV_FILE=no_env_file()))

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: inv[oke] [--core-opts] {name} ")
    assert "Docstring:" in result.stdout
    assert result.stderr == ""


def test_token_help_lists_sub_instead_of_minting_a_token_for_it() -> None:
    result = inv("token", "--help", env=inv_env(TODO_ENV_FILE=no_env_file()))

    assert "--sub=STRING" in result.stdout
    assert "eyJ" not in result.stdout  # no JWT printed


def test_token_without_sub_is_a_usage_error() -> None:
    result = inv("token", env=inv_env(TODO_ENV_FILE=no_env_file()))

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "error OPTION_INVALID: --sub is required: the user id the token is for, e.g. `inv token --sub alice`\n"
    )
