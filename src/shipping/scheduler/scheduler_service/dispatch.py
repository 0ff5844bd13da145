"""Giving deliveries drones and taking them back, safely with many replicas and across crashes.

An assignment (which drone flies a delivery, and when: the plan) lives in two documents: the
delivery's assignment, which says which plan the delivery wants, and the drone, whose claim carries
the plan. They are written in that order:

1. The assignment is written with an ETag (or created), so that of two requests for one delivery
   exactly one sets the plan and the other reads it and goes on from there.
2. The drone is claimed with an ETag write that succeeds only while it is free: two deliveries
   can never both claim it, whichever replicas serve them.
3. The request checks that the assignment still holds its plan (a later request may have changed
   it), and undoes its claim if not.

A request that crashes after step 1 leaves a plan whose drone is not claimed: the repeated request
claims it (if it is fresh and the drone still free) or plans again. One that crashes after step 2
leaves at most a claim the assignment does not hold: the background loop recalls such claims once
they are older than the grace period (see `simulation`). No drone is lost either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from scheduler_service.drones import (
    DroneBusyError,
    PackageAboardError,
    claim,
    location_of,
    recall,
)
from scheduler_service.fleet import Fleet
from scheduler_service.flights import (
    distance_of,
    is_aboard,
    last_passed,
    plan_delivery,
    progress,
    utc_now,
)
from scheduler_service.models import (
    Assignment,
    AssignmentRequest,
    AssignmentStage,
    AssignmentStatus,
    Location,
)
from scheduler_service.planning import (
    NoDroneFreeError,
    choose_drone,
    reserve_size,
)
from scheduler_service.records import AssignmentRecord, DroneRecord, FlightPlan, StopKind
from scheduler_service.settings import SchedulerSettings
from scheduler_service.store import ContentionError, SchedulerStore, Versioned
from servicekit.stores.errors import PreconditionFailedError
from servicekit.telemetry import current_traceparent

PLAN_FRESH_FOR = timedelta(seconds=5)
"""How long a plan whose drone was never claimed (its request crashed) may still be claimed as is by
a repeated request; an older one is planned again, so that no drone sets off late."""

ATTEMPTS = 48
"""How often one request re-reads and tries again after losing a race, before answering 503. Each
lost race means another request got a drone, so this bounds the waiting, not the progress."""


class AssignmentNotFoundError(Exception):
    pass


class PlanState(Enum):
    LIVE = "live"
    """The drone flies (or waits to fly) the plan."""
    COMPLETED = "completed"
    """The package was delivered; the drone has moved on."""
    LAPSED = "lapsed"
    """The drone was never claimed for the plan, or was released from it."""


@dataclass(frozen=True)
class Assigned:
    record: AssignmentRecord
    created: bool


class Dispatcher:
    def __init__(
        self,
        store: SchedulerStore,
        fleet: Fleet,
        settings: SchedulerSettings,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self._fleet = fleet
        self._speedup = settings.sim_speedup
        self._reserve_share = settings.expedited_reserve
        self._wait_for_fleet = settings.store_timeout_seconds
        self._clock = clock

    async def assign(self, request: AssignmentRequest) -> Assigned:
        """Give the delivery a drone (created), or answer the plan it has for the same request;
        a changed request is planned again, unless the package is aboard (PackageAboardError)."""
        await self._fleet.wait_seeded(self._wait_for_fleet)
        delivery_id = request.delivery_id
        wanted = request.model_dump(mode="json")
        existed: bool | None = None
        # Undeliverable: say so before anything changes (a drone's specification is constant).
        able = self._fleet.index.able(request)
        for _ in range(ATTEMPTS):
            now = self._clock()
            current = await self._store.assignments.get(delivery_id, delivery_id)
            existed = (current is not None) if existed is None else existed
            if current is not None and await self._answers(current.record, wanted, now):
                return Assigned(current.record, created=False)
            drone = await self._choose(able, request, now)
            plan = plan_delivery(
                drone.record,
                request,
                now=now,
                speedup=self._speedup,
                traceparent=current_traceparent(),
            )
            record = AssignmentRecord(
                id=delivery_id,
                delivery_id=delivery_id,
                owner_id=request.owner_id,
                request=wanted,
                plan=plan,
                created_at=current.record.created_at if current is not None else now,
                updated_at=now,
            )
            if await self._write(current, record) and await self._settle(plan, drone):
                return Assigned(record, created=not existed)
        raise NoDroneFreeError("Too many requests raced for the same drones; try again.", 1)

    async def cancel(self, delivery_id: str) -> None:
        """Release the delivery's drone and forget its assignment; nothing to do is fine too."""
        await self._fleet.wait_seeded(self._wait_for_fleet)
        for _ in range(ATTEMPTS):
            current = await self._store.assignments.get(delivery_id, delivery_id)
            plan = current.record.plan if current is not None else None
            if plan is not None:
                state = await self._state(plan)
                if state is PlanState.COMPLETED or (
                    state is PlanState.LIVE and is_aboard(plan, self._clock())
                ):
                    raise PackageAboardError(plan.drone_id)
            # Every drone claimed for the delivery: its plan's, and any a crashed request left.
            for found in await self._store.drones.query(("deliveryId", "=", delivery_id)):
                flight = found.record.flight
                if flight is not None:
                    held = plan is not None and flight.plan_id == plan.plan_id
                    await self._recall(flight, even_aboard=not held, read=found)
            if current is None:
                return
            try:
                await self._store.assignments.delete(delivery_id, delivery_id, etag=current.etag)
            except PreconditionFailedError:
                continue  # a request changed the plan meanwhile: release that one too
            return
        raise ContentionError(f"the assignment of {delivery_id} kept changing")

    async def status(self, delivery_id: str) -> AssignmentStatus:
        """The assignment as it is now: the drone's position, the stage, how far along."""
        await self._fleet.wait_seeded(self._wait_for_fleet)
        current = await self._store.assignments.get(delivery_id, delivery_id)
        if current is None:
            raise AssignmentNotFoundError(delivery_id)
        record, now = current.record, self._clock()
        plan = record.plan
        found = await self._store.drones.get(plan.drone_id, plan.drone_id)
        drone = found.record if found is not None else None
        state = await self._state(plan, drone)
        if state is PlanState.LAPSED:
            raise AssignmentNotFoundError(delivery_id)
        live = state is PlanState.LIVE
        return AssignmentStatus(
            **assignment_view(record).model_dump(),
            owner_id=record.owner_id,
            status=stage_of(plan, now) if live else AssignmentStage.COMPLETED,
            location=Location.of(location_of(drone, now) if drone else plan.stops[-1].location),
            progress=progress(plan, now) if live else 1.0,
        )

    async def _answers(
        self, current: AssignmentRecord, wanted: dict[str, Any], now: datetime
    ) -> bool:
        """Whether the delivery's plan answers the request, claiming its drone if a request that
        died left it unclaimed. For a changed request, release the plan's drone and answer False,
        or raise PackageAboardError once the package is aboard."""
        plan = current.plan
        state = await self._state(plan)
        if current.request == wanted:
            if state is not PlanState.LAPSED:
                return True
            return now - plan.planned_at <= PLAN_FRESH_FOR and await self._settle(plan)
        if state is PlanState.COMPLETED or (state is PlanState.LIVE and is_aboard(plan, now)):
            raise PackageAboardError(plan.drone_id)
        if state is PlanState.LIVE:
            await self._recall(plan, even_aboard=False)
        return False

    async def _choose(
        self, able: Iterable[DroneRecord], request: AssignmentRequest, now: datetime
    ) -> Versioned[DroneRecord]:
        """The drone `choose_drone` would choose from the whole fleet as it is now, as read.

        While more drones are free than the reserve for expedited deliveries keeps (or the delivery
        is expedited), that is the first free one of the able drones (`able`, in order of
        preference): the ids of the free drones come from one query that reads no drone, and only
        the one chosen is read. When none of them is able, or the reserve is reached, the whole
        fleet is read to say why.
        """
        # claimedAt is set exactly while a drone has a flight (see `drones`).
        free = set(await self._store.drones.ids(("claimedAt", "=", None)))
        reserve = reserve_size(len(self._fleet.index.drones), self._reserve_share)
        if request.expedited or len(free) > reserve:
            for candidate in able:
                if candidate.id not in free:
                    continue
                found = await self._store.drones.get(candidate.id, candidate.id)
                if found is not None and found.record.flight is None:
                    return found
        fleet = {found.record.id: found for found in await self._store.drones.query()}
        records = [found.record for found in fleet.values()]
        chosen = choose_drone(records, request, now=now, reserve_share=self._reserve_share)
        return fleet[chosen.id]

    async def _state(self, plan: FlightPlan, drone: DroneRecord | None = None) -> PlanState:
        if drone is None:
            found = await self._store.drones.get(plan.drone_id, plan.drone_id)
            drone = found.record if found is not None else None
        if drone is not None and drone.flight is not None and drone.flight.plan_id == plan.plan_id:
            return PlanState.LIVE
        if plan.owner_id is not None and await self._store.utilization.get(
            plan.plan_id, plan.owner_id
        ):
            return PlanState.COMPLETED
        return PlanState.LAPSED

    async def _write(
        self, current: Versioned[AssignmentRecord] | None, record: AssignmentRecord
    ) -> bool:
        """Set the delivery's plan, unless another request changed the assignment since `current`."""
        if current is None:
            return await self._store.assignments.create(record)
        try:
            await self._store.assignments.replace(current, record)
        except PreconditionFailedError:
            return False
        return True

    async def _settle(self, plan: FlightPlan, read: Versioned[DroneRecord] | None = None) -> bool:
        """Claim the plan's drone (`read`: as the request has just read it); False (and nothing
        claimed) if the drone is taken, or if the delivery has moved on to another plan meanwhile.

        Claims an earlier request left for the delivery are not recalled here: one of them may be
        the live claim of a request that changed the plan just now. The background loop recalls
        those the assignment does not hold (see `simulation`).
        """
        try:
            claimed = await self._store.drones.change(
                plan.drone_id,
                plan.drone_id,
                lambda drone: claim(drone, plan, now=self._clock()),
                read=read,
            )
        except DroneBusyError:
            return False
        if claimed is None:
            return False
        assert plan.delivery_id is not None
        if await self._store.assigned_plan_id(plan.delivery_id) != plan.plan_id:
            await self._recall(plan, even_aboard=True)
            return False
        return True

    async def _recall(
        self,
        plan: FlightPlan,
        *,
        even_aboard: bool,
        read: Versioned[DroneRecord] | None = None,
    ) -> None:
        await self._store.drones.change(
            plan.drone_id,
            plan.drone_id,
            lambda drone: recall(
                drone,
                plan.plan_id,
                now=self._clock(),
                speedup=self._speedup,
                even_aboard=even_aboard,
            ),
            read=read,
        )


def assignment_view(record: AssignmentRecord) -> Assignment:
    plan = record.plan
    pickup, dropoff = plan.stop(StopKind.PICKUP), plan.stop(StopKind.DROPOFF)
    assert pickup is not None, "a delivery's plan has a pickup"
    assert dropoff is not None, "a delivery's plan has a drop-off"
    return Assignment(
        delivery_id=record.delivery_id,
        drone_id=plan.drone_id,
        pickup_eta=pickup.at,
        dropoff_eta=dropoff.at,
        distance_km=round(distance_of(plan), 3),
    )


def stage_of(plan: FlightPlan, now: datetime) -> AssignmentStage:
    match last_passed(plan, now):
        case None:
            return AssignmentStage.SCHEDULED
        case StopKind.DEPARTURE:
            return AssignmentStage.HEADED_TO_PICKUP
        case StopKind.PICKUP:
            return AssignmentStage.HEADED_TO_DROPOFF
        case _:
            return AssignmentStage.COMPLETED
