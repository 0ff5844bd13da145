"""A paced load generator for latency: requests sent at a fixed rate, whatever the answers do.

A closed-loop generator (wrk, or a client waiting for each answer before the next) sends less while
the server is slow, and so under-reports exactly the slow moments ("coordinated omission"). Here
request *i* is due at `start + i / rate`; its latency runs from when it was due, not from when it
went out, so a stall counts against every request it delayed. Connections are kept alive and
opened as needed, up to a limit. It runs on uvloop and parses with httptools (both come with
uvicorn[standard]), which keeps it light beside the system it measures.

Its own stalls would count against the system too. A full collection of this process's garbage
(which walks every object the benchmark has loaded: 26-81 ms, seen here, once inside the measured
ten seconds) held back every request due meanwhile. As `timeit` does, the collector is off while it
measures: reference counting still frees what it allocates, and it runs for seconds only.
"""

from __future__ import annotations

import asyncio
import gc
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httptools
import uvloop


@dataclass(frozen=True)
class PacedResult:
    rate: float
    sent: int
    errors: int
    """Failed connections and answers other than 200."""
    latencies_ms: Sequence[float]

    def percentile(self, share: float) -> float:
        """The nearest-rank percentile, e.g. share=0.99 for the p99."""
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


class _Answer:
    """httptools' callbacks: the status and the end of one response."""

    def __init__(self) -> None:
        self.complete = False

    def on_message_complete(self) -> None:
        self.complete = True


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def get(self, request: bytes) -> tuple[int, bool]:
        """The answer's status, and whether the connection may carry another request."""
        answer = _Answer()
        parser = httptools.HttpResponseParser(answer)
        self._writer.write(request)
        while not answer.complete:
            chunk = await self._reader.read(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            parser.feed_data(chunk)
        status: int = parser.get_status_code()
        # nginx closes a client connection after `keepalive_requests` (1000) answers, and says so.
        return status, bool(parser.should_keep_alive())

    def close(self) -> None:
        self._writer.close()


class _Pool:
    def __init__(self, host: str, port: int, limit: int) -> None:
        self._host, self._port = host, port
        self._idle: list[_Connection] = []
        self._open = 0
        self._freed = asyncio.Condition()
        self._limit = limit

    async def acquire(self) -> _Connection:
        async with self._freed:
            while not self._idle and self._open >= self._limit:
                await self._freed.wait()
            if self._idle:
                return self._idle.pop()
            self._open += 1
        try:
            reader, writer = await asyncio.open_connection(self._host, self._port)
        except OSError:
            await self.discard()
            raise
        return _Connection(reader, writer)

    async def release(self, connection: _Connection) -> None:
        async with self._freed:
            self._idle.append(connection)
            self._freed.notify()

    async def discard(self, connection: _Connection | None = None) -> None:
        if connection is not None:
            connection.close()
        async with self._freed:
            self._open -= 1
            self._freed.notify()

    def close(self) -> None:
        for connection in self._idle:
            connection.close()


async def _paced(
    host: str, port: int, paths: Sequence[str], rate: float, seconds: float, connections: int
) -> PacedResult:
    pool = _Pool(host, port, connections)
    requests = [f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode() for path in paths]
    latencies: list[float] = []
    errors = 0

    async def one(request: bytes, due: float) -> None:
        nonlocal errors
        try:
            connection = await pool.acquire()
        except OSError:
            errors += 1
            return
        try:
            status, reusable = await connection.get(request)
        except (OSError, httptools.HttpParserError):
            errors += 1
            await pool.discard(connection)
            return
        latencies.append((time.perf_counter() - due) * 1000)
        if status != 200:
            errors += 1
        if reusable:
            await pool.release(connection)
        else:
            await pool.discard(connection)

    total = max(1, round(rate * seconds))
    pending: set[asyncio.Task[None]] = set()
    start = time.perf_counter() + 0.05
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(requests[i % len(requests)], due))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    pool.close()
    return PacedResult(rate=rate, sent=total, errors=errors, latencies_ms=latencies)


def run_paced(
    host: str,
    port: int,
    paths: Sequence[str],
    *,
    rate: float,
    seconds: float,
    connections: int = 64,
) -> PacedResult:
    """GET `paths` in turn at `rate` requests a second for `seconds`."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        return uvloop.run(_paced(host, port, paths, rate, seconds, connections))
    finally:
        if collecting:
            gc.enable()
