"""Preparing a store (schema, containers) in the background, so start-up never waits on the database.

A pod whose database is briefly unreachable still starts, still answers its probes, and answers 503 to
requests that need the store until the preparation has succeeded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from tenacity import AsyncRetrying, retry_if_exception_type, wait_random_exponential

from servicekit.stores.errors import StoreUnavailableError

log = logging.getLogger(__name__)


class Preparation:
    def __init__(self, name: str, prepare: Callable[[], Awaitable[None]]) -> None:
        self._name = name
        self._prepare = prepare
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"prepare {self._name}")

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    async def wait(self, timeout: float) -> None:
        """Return once prepared; raise StoreUnavailableError if that takes longer than `timeout`."""
        if self._done.is_set():
            return
        self.start()
        try:
            async with asyncio.timeout(timeout):
                await self._done.wait()
        except TimeoutError:
            raise StoreUnavailableError(f"the {self._name} store is still being prepared") from None

    async def _run(self) -> None:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_random_exponential(multiplier=0.2, max=10),
            before_sleep=lambda state: log.warning(
                "preparing the %s store failed, retrying",
                self._name,
                exc_info=state.outcome.exception() if state.outcome else None,
            ),
        )
        await retrying(self._prepare)
        self._done.set()
        log.info("the %s store is ready", self._name)
