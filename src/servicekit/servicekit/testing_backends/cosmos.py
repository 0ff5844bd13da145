"""A local Cosmos DB for tests: `@vercel/cosmosdb-server` from npm, over HTTPS, with fault injection.

The server is installed once into a cache folder (`.tools/cosmosdb-server` of the repository) and
started per test session on 127.0.0.1 on a free port. It serves HTTPS with a self-signed certificate,
so its store URLs carry `?verify=false`, and it accepts the public emulator key. The small Node wrapper
beside this module (cosmosdb-server.js) answers 404 where the server answers 500 for a missing item,
and lets tests throttle the server or cut its connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import shutil
import subprocess
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

import httpx

from servicekit.stores.urls import COSMOS_EMULATOR_KEY
from servicekit.testing_backends import BackendUnavailableError

PACKAGE = "@vercel/cosmosdb-server"
VERSION = "1.0.1"
WRAPPER = Path(__file__).with_name("cosmosdb-server.js")


class CosmosTestServer:
    key = COSMOS_EMULATOR_KEY

    def __init__(self, install_dir: Path) -> None:
        self.install_dir = install_dir
        self._process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader: threading.Thread | None = None
        self.host = "127.0.0.1"
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"https://{self.host}:{self.port}/"

    def url(self, database: str) -> str:
        """The store URL of a database on this server."""
        return f"cosmos://{self.host}:{self.port}/{database}?verify=false"

    def new_database_name(self) -> str:
        return f"test_{uuid.uuid4().hex[:12]}"

    def install(self) -> None:
        """Install the pinned server with npm into the cache folder, unless it is there already."""
        installed = self.install_dir / "node_modules" / PACKAGE / "package.json"
        if installed.is_file() and json.loads(installed.read_text())["version"] == VERSION:
            return
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            raise BackendUnavailableError("the Cosmos DB test server needs Node.js and npm")
        self.install_dir.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(self.install_dir),
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--silent",
                f"{PACKAGE}@{VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise BackendUnavailableError(
                f"npm could not install {PACKAGE}@{VERSION}: {result.stderr.strip()[-500:]}"
            )

    def start(self, timeout: float = 30.0) -> None:
        self.install()
        node = shutil.which("node")
        if node is None:
            raise BackendUnavailableError("the Cosmos DB test server needs Node.js")
        log = (self.install_dir / "server.log").open("a")
        self._process = subprocess.Popen(
            [node, str(WRAPPER), str(self.install_dir), self.host, "0"],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        log.close()
        assert self._process.stdout is not None
        self._reader = threading.Thread(
            target=_read_lines, args=(self._process.stdout, self._lines), daemon=True
        )
        self._reader.start()
        try:
            first = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            raise BackendUnavailableError("the Cosmos DB test server did not start") from None
        if not first.startswith("listening "):
            self.stop()
            raise BackendUnavailableError(f"the Cosmos DB test server failed: {first}")
        self.port = int(first.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process is not None and self._process.stdout is not None:
            if self._reader is not None:
                self._reader.join(timeout=5)  # it ends at the end of the output
            self._process.stdout.close()
        self._process = None

    def inject_faults(self, status: int, count: int, *, retry_after_ms: int = 0) -> None:
        """Answer the next `count` requests with `status` (a 429 says to retry after the given time)."""
        self._harness("faults", {"status": status, "count": count, "retryAfterMs": retry_after_ms})

    def lose_responses(self, count: int) -> None:
        """Carry out the next `count` requests but cut the connection instead of answering them."""
        self._harness("lose-responses", {"count": count})

    def outage(self, seconds: float) -> None:
        """Cut every open connection and refuse new ones for `seconds`; the data survives."""
        self._harness("outage", {"ms": round(seconds * 1000)})

    def drop_database(self, name: str) -> None:
        # The async client, on a thread of its own: this works from sync and async code alike, and
        # the sync client would leave health-check threads behind.
        with ThreadPoolExecutor(max_workers=1) as thread:
            thread.submit(asyncio.run, self._drop_database(name)).result()

    async def _drop_database(self, name: str) -> None:
        from azure.cosmos.aio import CosmosClient
        from azure.cosmos.exceptions import CosmosResourceNotFoundError

        async with CosmosClient(self.endpoint, self.key, connection_verify=False) as client:
            with contextlib.suppress(CosmosResourceNotFoundError):
                await client.delete_database(name)

    def _harness(self, action: str, body: dict[str, object]) -> None:
        response = httpx.post(f"{self.endpoint}_harness/{action}", json=body, verify=False)  # noqa: S501 (the test server's own certificate)
        response.raise_for_status()


def _read_lines(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line.strip())
