"""The work every replica does besides answering requests: seed the fleet, then forever move the
flights and send the notifications. Every part of it is safe to run in many replicas at once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception_type, wait_random_exponential

from scheduler_service.fleet import Fleet
from scheduler_service.fleet_gauge import FleetGauge
from scheduler_service.outbox import Outbox
from scheduler_service.simulation import FlightSimulator
from servicekit.stores.errors import StoreUnavailableError

log = logging.getLogger(__name__)

FLEET_GAUGE_SECONDS = 5.0


async def run_background(
    fleet: Fleet,
    simulator: FlightSimulator,
    outbox: Outbox,
    *,
    tick_seconds: float,
    fleet_gauge: FleetGauge | None = None,
) -> None:
    seeding = AsyncRetrying(
        retry=retry_if_exception_type(Exception),
        wait=wait_random_exponential(multiplier=0.2, max=10),
        before_sleep=lambda state: log.warning(
            "seeding the fleet failed, retrying",
            exc_info=state.outcome.exception() if state.outcome else None,
        ),
    )
    await seeding(fleet.seed)
    async with asyncio.TaskGroup() as group:
        group.create_task(_every(tick_seconds, simulator.tick, "moving the flights"))
        group.create_task(_every(tick_seconds, outbox.send_due, "sending notifications"))
        if fleet_gauge is not None:
            group.create_task(
                _every(FLEET_GAUGE_SECONDS, fleet_gauge.refresh, "counting the fleet")
            )


@asynccontextmanager
async def running(work: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run `work` as a task while the block runs; cancel it when the block ends."""
    task = asyncio.create_task(work, name="scheduler background")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _every(seconds: float, step: Callable[[], Awaitable[None]], what: str) -> None:
    while True:
        started = time.monotonic()
        try:
            await step()
        except StoreUnavailableError as exc:
            log.warning("%s: the store is unavailable (%s); trying again next tick", what, exc)
        except Exception:
            log.exception("%s failed; trying again next tick", what)
        await asyncio.sleep(max(0.0, seconds - (time.monotonic() - started)))
