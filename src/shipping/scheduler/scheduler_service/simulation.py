"""The flight simulation: every replica moves the fleet's flights past their milestones.

Drones move by the clock alone (see `flights`); what is written is only what happens at a milestone:
departure (HeadedToPickup), arrival at the pickup (HeadedToDropoff), arrival at the drop-off (the
confirmation and the utilization record; the drone heads home), landing (the drone is free). Each
tick, a replica looks for drones whose next milestone time has passed and moves each past it with a
conditional write on the drone (`drones.pass_stop`): if replicas race, one wins and the others find
the milestone handled. What the milestone produces travels in the same write and is copied out
afterwards (`drones` explains why).

The same loop undoes claims that no assignment holds (a request that crashed half way, see
`dispatch`), once they are older than the grace period: a claim that young may belong to a request
still under way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from scheduler_service.drones import due_stop, pass_stop, recall, without_pending
from scheduler_service.flights import utc_now
from scheduler_service.records import DroneRecord, StopKind, stored_time
from scheduler_service.settings import SchedulerSettings
from scheduler_service.store import SchedulerStore, Versioned
from servicekit.stores.errors import PreconditionFailedError

log = logging.getLogger(__name__)

DELIVERY_STOPS = frozenset((StopKind.DEPARTURE, StopKind.PICKUP, StopKind.DROPOFF))
"""The milestones that tell a delivery something, and so are passed only for a wanted claim."""

MAX_STEPS_PER_DRONE = 16
"""Steps one drone may take in one tick: a drone whose replicas were all down catches up at once."""


class FlightSimulator:
    def __init__(
        self,
        store: SchedulerStore,
        settings: SchedulerSettings,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self._speedup = settings.sim_speedup
        self._grace = timedelta(seconds=settings.claim_grace_seconds)
        self._clock = clock
        self._next_sweep = clock()

    async def tick(self) -> None:
        now = self._clock()
        for found in await self._store.drones.query(("nextMilestoneAt", "<=", stored_time(now))):
            await self.advance(found)
        if now >= self._next_sweep:
            self._next_sweep = now + self._grace / 2
            await self.sweep(now)

    async def advance(self, found: Versioned[DroneRecord] | None) -> None:
        """Move the drone (`found`: as just read) past every milestone whose time has come, one
        conditional write each. Each step starts from the version the last one wrote."""
        for _ in range(MAX_STEPS_PER_DRONE):
            if found is None:
                return
            drone, now = found.record, self._clock()
            if drone.pending:
                found = await self._copy_pending(found)
                continue
            stop = due_stop(drone, now)
            if stop is None:
                return
            if stop.kind in DELIVERY_STOPS and not await self._is_wanted(drone):
                await self._recall_if_stale(drone, now)
                return
            found = await self._write(found, pass_stop(drone, now=now))

    async def sweep(self, now: datetime) -> None:
        """Recall drones claimed longer than the grace period ago for plans no assignment holds."""
        cutoff = stored_time(now - self._grace)
        claimed = await self._store.drones.query(
            ("deliveryId", "!=", None), ("claimedAt", "<=", cutoff)
        )
        for found in claimed:
            if not await self._is_wanted(found.record):
                await self._recall_if_stale(found.record, now)

    async def _is_wanted(self, drone: DroneRecord) -> bool:
        flight = drone.flight
        if flight is None or flight.delivery_id is None:
            return True
        return await self._store.assigned_plan_id(flight.delivery_id) == flight.plan_id

    async def _recall_if_stale(self, drone: DroneRecord, now: datetime) -> None:
        flight = drone.flight
        if flight is None or drone.claimed_at is None or now - drone.claimed_at < self._grace:
            return
        log.warning(
            "recalling %s: its claim for delivery %s is held by no assignment",
            drone.id,
            flight.delivery_id,
        )
        await self._store.drones.change(
            drone.id,
            drone.id,
            lambda current: recall(
                current, flight.plan_id, now=self._clock(), speedup=self._speedup, even_aboard=True
            ),
        )

    async def _copy_pending(self, found: Versioned[DroneRecord]) -> Versioned[DroneRecord] | None:
        drone = found.record
        copied = []
        for write in drone.pending:
            await self._store.create_document(write.container, write.document)
            copied.append((write.container, str(write.document["id"])))
        cleared = without_pending(drone, copied, now=self._clock())
        return found if cleared is None else await self._write(found, cleared)

    async def _write(
        self, found: Versioned[DroneRecord], drone: DroneRecord
    ) -> Versioned[DroneRecord] | None:
        """The drone written over `found`: the version written, or, if another replica or a
        request wrote first, the version it wrote, to decide again on."""
        try:
            return await self._store.drones.replace(found, drone)
        except PreconditionFailedError:
            return await self._store.drones.get(drone.id, drone.id)
