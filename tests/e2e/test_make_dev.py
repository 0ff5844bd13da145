"""`make dev` as a person uses it: in a terminal, try the command it prints, then Ctrl-C."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shlex
import signal
import socket
import subprocess
import termios
import time
from pathlib import Path

import pytest

from servicekit.testing import free_port

ROOT = Path(__file__).resolve().parents[2]


def read_until(fd: int, pattern: str, timeout: float) -> str:
    seen = b""
    deadline = time.monotonic() + timeout
    while re.search(pattern, seen.decode(errors="replace")) is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(
                f"waited {timeout} s for {pattern!r}; the terminal showed:\n{seen.decode()}"
            )
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the terminal closed: the command ended
                break
            seen += chunk
    return seen.decode(errors="replace")


def test_make_dev_runs_the_system_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("GATEWAY", "DELIVERY", "PACKAGE", "SCHEDULER")}
    env = {
        **os.environ,
        **{f"{name}_PORT": str(port) for name, port in ports.items()},
        "DATA_DIR": str(tmp_path / "data"),
    }
    env.pop("VIRTUAL_ENV", None)
    process, terminal = _spawn_in_terminal(["make", "--no-print-directory", "dev"], env)
    try:
        shown = read_until(terminal, r"Ctrl-C stops everything", timeout=90)
        assert f"http://127.0.0.1:{ports['GATEWAY']}" in shown
        command = shown[shown.index("Try it:") + len("Try it:") : shown.index("Or watch")]
        command = command.replace("\\\r\n", " ").replace("\r\n", " ").strip()

        tried = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=30)

        assert tried.returncode == 0, tried.stderr
        assert "202 Accepted" in tried.stdout, tried.stdout

        os.write(terminal, b"\x03")  # Ctrl-C, as typed
        read_until(terminal, r"stopping", timeout=10)
        assert process.wait(timeout=60) is not None
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        os.close(terminal)

    for name, port in ports.items():
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"{name} still listens after Ctrl-C"


def _spawn_in_terminal(
    command: list[str], env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], int]:
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
        # The terminal becomes the command's controlling terminal, so Ctrl-C means SIGINT to it.
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )
    os.close(terminal)
    return process, controller
