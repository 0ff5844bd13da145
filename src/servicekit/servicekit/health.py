"""Liveness and readiness, and draining on SIGTERM.

None of the probes touches a store or another service: a database outage must not make Kubernetes
restart every pod (liveness) or take every pod out of its Service at once (readiness). Calls to
dependencies recover through retries and answer 503 on their own while they cannot.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from types import FrameType
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


class Lifecycle:
    """Whether the process is starting, serving, or draining before it stops."""

    def __init__(self) -> None:
        self.started = False
        self.draining = False

    @property
    def ready(self) -> bool:
        return self.started and not self.draining

    def drain_on_sigterm(self, drain_seconds: float) -> None:
        """On SIGTERM, answer not-ready for `drain_seconds`, then let the server shut down.

        uvicorn has installed its own handler by the time the app starts; it is called once the drain
        is over, so in-flight requests still finish gracefully. Outside a real server (tests) there is
        no such handler and nothing is changed.
        """
        if threading.current_thread() is not threading.main_thread():
            return
        server_handler = signal.getsignal(signal.SIGTERM)
        if not callable(server_handler):
            return
        loop = asyncio.get_running_loop()

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            if self.draining:  # a second SIGTERM: stop now
                server_handler(signum, frame)
                return
            self.draining = True
            log.info("SIGTERM: draining for %.1f s before shutting down", drain_seconds)
            loop.call_soon_threadsafe(loop.call_later, drain_seconds, server_handler, signum, frame)

        signal.signal(signal.SIGTERM, on_sigterm)


def _status(ok: bool, state: str) -> JSONResponse:
    return JSONResponse({"status": state}, status_code=200 if ok else 503)


@router.get("/livez", summary="Liveness: the process is running")
async def livez() -> dict[str, Any]:
    return {"status": "ok"}


@router.get("/healthz", summary="Liveness under the original implementation's name")
async def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: started and not draining",
    responses={503: {"description": "Starting or draining"}},
)
async def readyz(request: Request) -> JSONResponse:
    lifecycle: Lifecycle = request.app.state.lifecycle
    if lifecycle.ready:
        return _status(True, "ready")
    return _status(False, "draining" if lifecycle.draining else "starting")
