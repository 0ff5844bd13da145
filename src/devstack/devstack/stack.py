"""The whole system as local processes: nginx and three uvicorn services under supervisord.

supervisord restarts a process that dies (the chaos tests kill them on purpose), keeps each one's log,
and stops them all in order. `Stack` writes its configuration, starts it, waits until every process
answers its probe, and tells the tests which process has which pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from supervisor.xmlrpc import SupervisorTransport

from devstack.gateway import GatewayLimits, find_nginx, gateway_values, nginx_command, write_config

SERVICES = ("delivery", "package", "scheduler")


@dataclass(frozen=True)
class Ports:
    gateway: int = 8080
    delivery: int = 8081
    package: int = 8082
    scheduler: int = 8083

    def of(self, program: str) -> int:
        port: int = getattr(self, program)
        return port


@dataclass(frozen=True)
class StackSettings:
    data_dir: Path = Path(".data")
    ports: Ports = field(default_factory=Ports)
    limits: GatewayLimits = field(default_factory=GatewayLimits)
    # Extra settings for the services, e.g. {"SCHEDULER_SIM_SPEEDUP": "600"}.
    env: Mapping[str, str] = field(default_factory=dict)
    # Workers per service; more than one shows the services sharing their stores safely.
    workers: int = 1


class StackError(RuntimeError):
    pass


class Stack:
    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.log_dir = self.data_dir / "logs"
        # A unix socket path must stay short (108 bytes), whatever the data directory is.
        self._control_dir = Path(tempfile.mkdtemp(prefix="dd-stack-"))
        self._socket = self._control_dir / "supervisor.sock"
        self._supervisord: subprocess.Popen[bytes] | None = None

    # --- URLs ------------------------------------------------------------------------------------
    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.ports.gateway}"

    def service_url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.settings.ports.of(service)}"

    # --- Lifecycle -------------------------------------------------------------------------------
    def start(self, *, timeout: float = 60) -> Stack:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_supervisor_config()
        self._supervisord = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(config)],
            env=self._environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own session: Ctrl-C reaches the caller, which then stops the stack in order.
            start_new_session=True,
        )
        try:
            self.wait_ready(timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, *, timeout: float = 60) -> None:
        probes = {"gateway": f"{self.gateway_url}/healthz"} | {
            service: f"{self.service_url(service)}/readyz" for service in SERVICES
        }
        deadline = time.monotonic() + timeout
        waiting = dict(probes)
        with httpx.Client(timeout=1) as client:
            while waiting:
                if self._supervisord is not None and self._supervisord.poll() is not None:
                    raise StackError(f"supervisord exited; see {self.data_dir / 'supervisord.log'}")
                for program, url in list(waiting.items()):
                    try:
                        if client.get(url).status_code == 200:
                            del waiting[program]
                    except httpx.TransportError:
                        pass
                if waiting and time.monotonic() > deadline:
                    tails = "\n".join(self.log_tail(p) for p in waiting)
                    raise StackError(f"not ready after {timeout:.0f} s: {sorted(waiting)}\n{tails}")
                time.sleep(0.1)

    def stop(self) -> None:
        if self._supervisord is None:
            return
        if self._supervisord.poll() is None:
            self._supervisord.send_signal(signal.SIGTERM)  # stops every program, then itself
            try:
                self._supervisord.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self._supervisord.pid, signal.SIGKILL)
                self._supervisord.wait()
        self._supervisord = None
        shutil.rmtree(self._control_dir, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- Processes -------------------------------------------------------------------------------
    def pid(self, program: str) -> int:
        info: dict[str, Any] = self._rpc().supervisor.getProcessInfo(program)
        return int(info["pid"])

    def kill(
        self, program: str, sig: signal.Signals = signal.SIGKILL, *, group: bool = False
    ) -> int:
        """Send a signal to a program's process (supervisord restarts it); answer the pid signalled.

        `group`: signal its whole process group instead (supervisord gives each program its own), as
        a crashed container takes every process with it: nginx's workers die with their master
        rather than linger, still listening, beside the restarted gateway.
        """
        pid = self.pid(program)
        if pid:
            try:
                if group:
                    os.killpg(pid, sig)
                else:
                    os.kill(pid, sig)
            except ProcessLookupError:
                return 0  # it died (and is being restarted) since it was looked up
        return pid

    def restart(self, program: str) -> None:
        rpc = self._rpc()
        rpc.supervisor.stopProcess(program)
        rpc.supervisor.startProcess(program)

    def log_path(self, program: str) -> Path:
        """Where supervisord writes the program's output (its JSON logs, for the services)."""
        return self.log_dir / f"{program}.log"

    def log_tail(self, program: str, lines: int = 20) -> str:
        path = self.log_path(program)
        if not path.exists():
            return f"({program}: no log)"
        return f"--- {program} ---\n" + "\n".join(path.read_text().splitlines()[-lines:])

    def _rpc(self) -> Any:
        transport = SupervisorTransport(None, None, f"unix://{self._socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    # --- Configuration ---------------------------------------------------------------------------
    def _environment(self) -> dict[str, str]:
        env = {
            **os.environ,
            "DATA_DIR": str(self.data_dir),
            "DELIVERY_PACKAGE_SERVICE_URL": self.service_url("package"),
            "DELIVERY_SCHEDULER_SERVICE_URL": self.service_url("scheduler"),
            "SCHEDULER_DELIVERY_SERVICE_URL": self.service_url("delivery"),
            "PYTHONUNBUFFERED": "1",
        }
        env.update(self.settings.env)
        return env

    def _write_supervisor_config(self) -> Path:
        gateway_dir = self.data_dir / "gateway"
        nginx_config = write_config(
            gateway_dir / "nginx.conf",
            gateway_values(
                listen_port=self.settings.ports.gateway,
                delivery_upstream=f"127.0.0.1:{self.settings.ports.delivery}",
                runtime_dir=gateway_dir / "run",
                limits=self.settings.limits,
            ),
        )
        programs = {"gateway": nginx_command(find_nginx(), nginx_config)}
        for service in SERVICES:
            programs[service] = uvicorn_command(
                f"{service}_service.app:app",
                port=self.settings.ports.of(service),
                workers=self.settings.workers,
            )
        sections = [
            "[supervisord]",
            "nodaemon=true",
            f"logfile={self.data_dir / 'supervisord.log'}",
            f"pidfile={self._control_dir / 'supervisord.pid'}",
            f"childlogdir={self.log_dir}",
            "",
            "[unix_http_server]",
            f"file={self._socket}",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
        ]
        for program, command in programs.items():
            sections += [
                f"[program:{program}]",
                "command=" + " ".join(_quote(part) for part in command),
                f"directory={self.data_dir}",
                "autorestart=true",
                # Restarted however often it dies: the chaos tests kill processes every few seconds.
                "startsecs=1",
                "startretries=1000",
                "stopsignal=TERM",
                "stopwaitsecs=15",
                "stopasgroup=true",
                "killasgroup=true",
                "redirect_stderr=true",
                f"stdout_logfile={self.log_path(program)}",
                "stdout_logfile_maxbytes=20MB",
                "stdout_logfile_backups=1",
                "",
            ]
        path = self._control_dir / "supervisord.conf"
        path.write_text("\n".join(sections))
        return path


def uvicorn_command(app: str, *, port: int, workers: int = 1) -> list[str]:
    """How a service (or the benchmark's baseline app) is served: one place, so they are served alike."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        # servicekit writes the services' access log; uvicorn's would be a second line per request,
        # and the benchmark's baseline app, which has no servicekit, would pay for writing it.
        "--no-access-log",
    ]


def _quote(part: str) -> str:
    # supervisord splits commands like a shell; its configuration also expands %(...)s.
    escaped = part.replace("%", "%%")
    return f'"{escaped}"' if " " in escaped else escaped
