"""Helpers for tests that want a real HTTP server, or a real service process, rather than a fake.

Concurrency, connection handling and timeouts only behave as in production over real sockets, so the
tests of the resilient client and the concurrency tests of the services use these.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from pathlib import Path

import httpx
import uvicorn
from starlette.types import ASGIApp


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_in_thread(
    app: ASGIApp, *, port: int | None = None, startup_timeout: float = 10
) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 in a background thread; yield its base URL."""
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)  # off the main thread, uvicorn leaves signals alone
    thread = threading.Thread(target=server.run, name=f"uvicorn:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the test server on port {port} did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class ServiceProcess:
    """A service as its own uvicorn process, as it runs in a pod: started, waited for, signalled.

    For tests about what only a separate process shows: crashes (SIGKILL), draining (SIGTERM), two
    replicas sharing a store, a service installed alone.
    """

    def __init__(
        self,
        app: str,
        *,
        env: Mapping[str, str],
        cwd: Path,
        log: Path,
        python: str = sys.executable,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("ab") as sink:
            self.process = subprocess.Popen(  # noqa: S603 - the test's own interpreter and app
                [python, "-m", "uvicorn", app, "--port", str(self.port)],
                cwd=cwd,
                env=dict(env),
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 30) -> ServiceProcess:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/readyz").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.url} did not become ready:\n{self.log.read_text()}")
            time.sleep(0.05)

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: the process dies at once, as in a node failure or an OOM kill."""
        self.process.kill()
        self.process.wait(timeout=15)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=15)

    def __enter__(self) -> ServiceProcess:
        return self.wait_ready()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
