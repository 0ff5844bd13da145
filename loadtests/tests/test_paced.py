"""The paced load generator measures the system's latency, not its own pauses."""

from __future__ import annotations

import gc
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from loadtests.bench.paced import run_paced
from servicekit.testing import serve_in_thread


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def test_no_garbage_collection_pauses_the_client_while_it_measures() -> None:
    started: list[int] = []

    def record(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started.append(info["generation"])

    thresholds = gc.get_threshold()
    with serve_in_thread(Starlette(routes=[Route("/ok", ok)])) as url:
        port, paths = int(url.rsplit(":", 1)[1]), ["/ok"]
        # A collection every allocation or so, unless the client holds the collector off.
        gc.set_threshold(1)
        gc.callbacks.append(record)
        try:
            paced = run_paced("127.0.0.1", port, paths, rate=200, seconds=0.5)
        finally:
            gc.callbacks.remove(record)
            gc.set_threshold(*thresholds)

    assert (paced.sent, paced.errors, len(paced.latencies_ms)) == (100, 0, 100)
    assert started == []
    assert gc.isenabled()
