"""The runner: one background task per delivery this replica holds the lease of.

Whoever gives a delivery work on this replica (the API after a request, the sweeper after a claim)
kicks the runner. A kick starts the delivery's task, or wakes the running one from a wait so it sees
the change at once. At most `max_active` tasks work at a time; the others wait for a turn, their
deliveries safe in the store, so that a burst of requests is accepted at the speed of intake and
scheduled at the speed of the neighbours. On shutdown the runner stops its tasks and hands their leases back (expires them),
so another replica's sweeper resumes them without waiting for the leases to run out.
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
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wakes: dict[str, asyncio.Event] = {}
        self._stopping = False
        self._turns = asyncio.Semaphore(max_active)
        self._intake_first = intake_first

    @property
    def active(self) -> int:
        return len(self._tasks)

    def kick(self, delivery_id: str) -> None:
        """Make sure the delivery's work is being done here, and looked at again from the store."""
        if self._stopping:
            return
        if delivery_id in self._tasks:
            self._wakes[delivery_id].set()
            return
        self._wakes[delivery_id] = asyncio.Event()
        self._tasks[delivery_id] = asyncio.create_task(
            self._run(delivery_id), name=f"delivery {delivery_id}"
        )

    async def _run(self, delivery_id: str) -> None:
        wake = self._wakes[delivery_id]
        try:
            while True:
                async with self._turns:
                    await self._intake_first.wait()
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
        finally:
            del self._tasks[delivery_id]
            del self._wakes[delivery_id]

    async def stop(self) -> None:
        self._stopping = True
        tasks = dict(self._tasks)
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        await asyncio.gather(*(self._hand_back(id) for id in tasks), return_exceptions=True)

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
