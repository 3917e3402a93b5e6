"""`inv free-port`: who holds a port, ending exactly that process, and the nearest free port.

Real processes listen on real sockets; `inv` runs in a subprocess without a
terminal, as a script or CI would run it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator

import pytest

from backend.diagnostics.killing import KillRefusedError, processes_to_end
from backend.diagnostics.ports import PortArgumentError, PortHolder, ipv6_available, parse_port
from tests.support.live import free_port
from tests.support.suite import ROOT
from tests.support.toolbelt import Listener, inv, inv_command, inv_env, no_env_file

needs_ipv6 = pytest.mark.skipif(not ipv6_available(), reason="IPv6 is not available on this machine")
needs_root = pytest.mark.skipif(
    os.name != "posix" or os.geteuid() != 0 or shutil.which("runuser") is None,
    reason="starting another user's process needs root and runuser",
)


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def holder(port: int) -> Iterator[Listener]:
    with Listener("127.0.0.1", port) as listener:
        yield listener


def free_port_task(*args: str) -> tuple[int, str, str]:
    result = inv("free-port", *args, env=inv_env(TODO_ENV_FILE=no_env_file()))
    return result.returncode, result.stdout, result.stderr


# Showing the holder


def test_free_port_names_pid_user_and_command_line_of_the_holder(holder: Listener, port: int) -> None:
    status, out, err = free_port_task("--port", str(port))

    assert status == 1, err
    lines = out.splitlines()
    assert lines[0] == f"port {port} is held by:"
    assert lines[1].startswith(f"  pid {holder.pid}  python")
    assert lines[1].endswith("  user root  listening on 127.0.0.1") or os.geteuid() != 0
    assert lines[2].startswith("    ")
    assert lines[2].endswith(f" 127.0.0.1 {port} default {holder.tag}")
    assert lines[3] == f"End it with `inv free-port --port {port} --kill`, or serve elsewhere: `inv run --port auto`."
    assert holder.running()


@needs_ipv6
def test_free_port_names_a_holder_listening_on_ipv6_loopback_only(port: int) -> None:
    with Listener("::1", port) as holder:
        status, out, _ = free_port_task("--port", str(port))

    assert status == 1
    assert f"  pid {holder.pid}  " in out
    assert "listening on ::1\n" in out


def test_free_port_on_a_free_port_says_so_and_exits_0(port: int) -> None:
    status, out, err = free_port_task("--port", str(port))

    assert (status, err) == (0, "")
    assert out.startswith(f"port {port} is free on 127.0.0.1")


# Ending the holder


def test_kill_yes_ends_exactly_the_holder_and_leaves_a_bystander_running(holder: Listener, port: int) -> None:
    with Listener("127.0.0.1", free_port()) as bystander:
        status, out, err = free_port_task("--port", str(port), "--kill", "--yes")

        assert status == 0, err
        assert holder.wait() == -signal.SIGTERM
        assert bystander.running()
    assert f"ended pid {holder.pid} (SIGTERM)\n" in out
    assert out.endswith(f"port {port} is free on 127.0.0.1, ::1\n" if ipv6_available() else "127.0.0.1\n")


def test_holder_that_ignores_sigterm_is_killed_after_the_grace_period(port: int) -> None:
    with Listener("127.0.0.1", port, ignore_term=True) as holder:
        status, out, err = free_port_task("--port", str(port), "--kill", "--yes", "--grace", "0.5")

        assert status == 0, err
        assert holder.wait() == -signal.SIGKILL
    assert f"ended pid {holder.pid} (SIGKILL)\n" in out


def test_kill_without_yes_and_without_a_terminal_refuses_with_exit_2(holder: Listener, port: int) -> None:
    status, _, err = free_port_task("--port", str(port), "--kill")

    assert status == 2
    assert err == (
        "error CONFIRMATION_REQUIRED: --kill needs a terminal to ask on; add --yes to end it without asking\n"
    )
    assert holder.running()


@pytest.mark.parametrize(("answer", "ended"), [("y", True), ("n", False), ("", False)], ids=["yes", "no", "enter"])
def test_kill_asks_on_a_terminal_and_ends_only_on_yes(holder: Listener, port: int, answer: str, ended: bool) -> None:
    controller, terminal = os.openpty()
    try:
        os.write(controller, f"{answer}\n".encode())
        result = subprocess.run(
            inv_command("free-port", "--port", str(port), "--kill"),
            cwd=ROOT,
            env=inv_env(TODO_ENV_FILE=no_env_file()),
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)

    question = f"End pid {holder.pid} ("
    assert question in result.stdout
    assert "? [y/N] " in result.stdout
    if ended:
        assert result.returncode == 0, result.stderr
        assert holder.wait() == -signal.SIGTERM
        assert f"ended pid {holder.pid} (SIGTERM)" in result.stdout
    else:
        assert result.returncode == 1
        assert result.stdout.endswith("Nothing ended.\n")
        assert holder.running()


def test_kill_refuses_a_parent_of_the_command(port: int) -> None:
    # This test process listens: it is a parent of the `inv` it starts.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        status, _, err = free_port_task("--port", str(port), "--kill", "--yes")

    assert status == 1
    assert err.startswith(f"error PORT_KILL_REFUSED: Refusing to end pid {os.getpid()} (")
    assert err.endswith(
        ": it is this command or one of its parents. stop it from its own terminal, or pass --force if you are sure\n"
    )


@needs_root
def test_kill_refuses_another_users_process_unless_forced(port: int) -> None:
    with Listener("127.0.0.1", port, user="nobody") as holder:
        refused, _, refusal = free_port_task("--port", str(port), "--kill", "--yes")
        assert psutil_running(holder.pid)

        forced, out, err = free_port_task("--port", str(port), "--kill", "--yes", "--force")

        assert not psutil_running(holder.pid)
    assert refused == 1
    assert refusal.startswith(f"error PORT_KILL_REFUSED: Refusing to end pid {holder.pid} (")
    assert ": it belongs to another user (nobody). ask its owner, or pass --force" in refusal
    assert forced == 0, err
    assert f"ended pid {holder.pid} (SIGTERM)" in out


def psutil_running(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_pid_1_is_never_chosen_without_force() -> None:
    with pytest.raises(KillRefusedError, match=r"^Refusing to end pid 1 \(.*\): it is PID 1, the system's init"):
        processes_to_end([PortHolder(1)])


# Bad input


@pytest.mark.parametrize(
    "template",
    ["abc", "-1", "70000", "{port}; rm -rf /", "{port}abc", "+{port}", "\uff18\uff10\uff10\uff10"],
)
def test_bad_port_argument_is_a_usage_error_and_nothing_is_killed(holder: Listener, port: int, template: str) -> None:
    value = template.format(port=port)

    status, out, err = free_port_task("--port", value, "--kill", "--yes")

    assert (status, out) == (2, "")
    assert err == (
        f"error PORT_INVALID: --port {value!r} is not a port number. "
        "give a whole number from 1 to 65535, e.g. --port 8000\n"
    )
    assert holder.running()


@pytest.mark.parametrize("grace", ["soon", "nan"])
def test_bad_grace_is_a_usage_error_and_nothing_is_killed(holder: Listener, port: int, grace: str) -> None:
    status, _, err = free_port_task("--port", str(port), "--kill", "--yes", "--grace", grace)

    assert status == 2
    assert err.startswith(f"error OPTION_INVALID: --grace {grace!r} is not a number of seconds")
    assert holder.running()


# The nearest free port


def test_next_prints_the_nearest_port_bindable_on_both_loopbacks(holder: Listener, port: int) -> None:
    status, out, err = free_port_task("--port", str(port), "--next")

    assert (status, err) == (0, "")
    found = int(out)
    assert found > port
    assert out == f"{found}\n"
    for family, host in [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")][: 2 if ipv6_available() else 1]:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((host, found))  # no SO_REUSEADDR: as strict as the check


def test_next_of_a_free_port_is_that_port(port: int) -> None:
    assert free_port_task("--port", str(port), "--next") == (0, f"{port}\n", "")


@pytest.mark.parametrize("value", ["0", "65536", "", " 8000", "8000 ", "8_000", "8000.0", "0x1f40", "٨٠٠٠", "1" * 40])
def test_parse_port_accepts_only_plain_digits_in_range(value: str) -> None:
    with pytest.raises(
        PortArgumentError, match=r"^--port .* is not a port number\. give a whole number from 1 to 65535"
    ):
        parse_port(value)


@pytest.mark.parametrize(("value", "port"), [("1", 1), ("8000", 8000), ("65535", 65535), ("08000", 8000)])
def test_parse_port_reads_a_valid_port(value: str, port: int) -> None:
    assert parse_port(value) == port
