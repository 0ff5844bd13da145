"""The runner: works on the deliveries this replica holds the lease of, `max_active` at a time.

Whoever gives a delivery work on this replica (the API after a request, the sweeper after a claim)
kicks the runner. A kick queues the delivery, or wakes its running workflow from a wait so it sees
the change at once. `max_active` workers take the queue in order, so a burst of requests is accepted
at the speed of intake and scheduled at the speed of the neighbours; the backlog is a list of ids
(its deliveries are safe in the store), not a task each, so that it costs the intake next to
nothing. On shutdown the runner stops its workers and hands the leases of everything running or
queued back (expires them), so another replica's sweeper resumes them without waiting for the
leases to run out.
"""

from __future__ import annotations

import asyncio
import logging

from delivery_service.leases import Leases
from delivery_service.priority import IntakeFirst
from delivery_service.store import DeliveryRepository
from delivery_service.workflow import Workflow
from servicekit.stores.errors import PreconditionFailedError, StoreError

log = logging.getLogger(__name__)


class Runner:
    def __init__(
        self,
        workflow: Workflow,
        deliveries: DeliveryRepository,
        leases: Leases,
        *,
        max_active: int,
        intake_first: IntakeFirst,
    ) -> None:
        self._workflow = workflow
        self._deliveries = deliveries
        self._leases = leases
        self._max_active = max_active
        self._intake_first = intake_first
        self._backlog: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._wakes: dict[str, asyncio.Event] = {}  # the deliveries being worked on
        self._workers: list[asyncio.Task[None]] = []
        self._stopping = False

    def kick(self, delivery_id: str) -> None:
        """Make sure the delivery's work is being done here, and looked at again from the store."""
        if self._stopping:
            return
        if delivery_id in self._wakes:
            self._wakes[delivery_id].set()
            return
        if delivery_id in self._queued:
            return  # it reads the delivery afresh when its turn comes
        self._queued.add(delivery_id)
        self._backlog.put_nowait(delivery_id)
        if len(self._workers) < self._max_active:
            self._workers.append(
                asyncio.create_task(self._work(), name=f"runner {len(self._workers)}")
            )

    async def _work(self) -> None:
        while True:
            delivery_id = await self._backlog.get()
            # Not a delivery's turn while accepting requests saturates the replica (priority.py).
            await self._intake_first.wait()
            self._queued.discard(delivery_id)
            wake = self._wakes[delivery_id] = asyncio.Event()
            try:
                await self._run(delivery_id, wake)
            finally:
                del self._wakes[delivery_id]

    async def _run(self, delivery_id: str, wake: asyncio.Event) -> None:
        try:
            while True:
                await self._workflow.run(delivery_id, wake)
                # A kick that came while the run was finishing may have given it new work.
                if not wake.is_set():
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            # A fault of ours, not of a neighbour (those are waited out): the lease runs out and a
            # sweeper tries again later, so one bad delivery cannot spin a replica.
            log.exception("the workflow of delivery %s failed", delivery_id)

    async def stop(self) -> None:
        self._stopping = True
        held = [*self._wakes, *self._queued]
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        await asyncio.gather(*(self._hand_back(id) for id in held), return_exceptions=True)

    async def _hand_back(self, delivery_id: str) -> None:
        try:
            current = await self._deliveries.get(delivery_id)
            if current is None or not self._leases.holds(current.delivery.work):
                return
            work = current.delivery.work
            assert work is not None
            expired = current.delivery.model_copy(
                update={"work": work.model_copy(update={"lease_expires_at": 0.0})}
            )
            await self._deliveries.replace(expired, current.etag)
        except (PreconditionFailedError, StoreError) as exc:
            log.info(
                "lease of delivery %s not handed back (%s); it expires on its own", delivery_id, exc
            )
