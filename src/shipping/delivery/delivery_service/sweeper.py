"""The sweeper: in every replica, a loop that takes over deliveries whose lease expired.

A lease expires when the replica holding it died or stalled (or handed it back on shutdown). Every
replica's sweeper looks for such deliveries; claiming one is a conditional write on the ETag it read,
so when several replicas find the same delivery exactly one wins and runs its work.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from opentelemetry import trace

from delivery_service.leases import Kick, Leases
from delivery_service.store import DeliveryRepository
from servicekit.stores.errors import PreconditionFailedError, StoreError
from servicekit.telemetry import background_span

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


class Sweeper:
    def __init__(
        self,
        deliveries: DeliveryRepository,
        leases: Leases,
        kick: Kick,
        *,
        interval: float,
        batch_size: int,
    ) -> None:
        self._deliveries = deliveries
        self._leases = leases
        self._kick = kick
        self._interval = interval
        self._batch_size = batch_size
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def sweep(self) -> int:
        """Claim the deliveries whose lease expired; answer how many this replica won."""
        claimed = 0
        for current in await self._deliveries.with_expired_leases(time.time(), self._batch_size):
            try:
                await self._deliveries.replace(self._leases.renewed(current.delivery), current.etag)
            except PreconditionFailedError:
                continue  # another replica claimed it first, or it changed: not ours
            log.info("resuming delivery %s, whose lease had expired", current.delivery.id)
            work = current.delivery.work
            # The resumed work runs in a trace of its own, linked to the request that gave it.
            with background_span(
                tracer,
                "delivery sweeper resume",
                work.traceparent if work is not None else None,
                {"delivery.id": current.delivery.id},
            ):
                self._kick(current.delivery.id)
            claimed += 1
        return claimed

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except StoreError as exc:
                log.warning("sweep skipped: %s", exc)
            except Exception:
                log.exception("sweep failed")
            # Jitter, so that replicas started together do not sweep in lockstep.
            await asyncio.sleep(self._interval * random.uniform(0.75, 1.25))
