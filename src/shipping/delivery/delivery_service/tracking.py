"""Tracking: the scheduler's reports of a flight, and what a client sees of it.

The scheduler posts each report until it is acknowledged, with an `eventId` of its choosing. A report
is stored once (its document id derives from the eventId) and then applied to the delivery: the stage
only moves forward and the last known location only gets newer, so applying a report twice, late or
out of order changes nothing. A report that was stored but not applied (a crash in between) is
applied when the scheduler posts it again, which it does because it got no answer.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from delivery_service.locations import Location
from delivery_service.models import (
    Confirmation,
    DeliveryStatus,
    EventKind,
    FlightEvent,
    Stage,
    TrackingEvent,
)
from delivery_service.neighbours import SchedulerService
from delivery_service.outcomes import store_event
from delivery_service.store import (
    DeliveryRepository,
    EventRepository,
    Goal,
    StoredDelivery,
    StoredEvent,
    Versioned,
)
from delivery_service.views import event_view
from servicekit.problems import Problem
from servicekit.stores.errors import PreconditionFailedError

# Distinct from every id this service gives its own events (uuid4), whatever the sender's ids are.
_REPORTS = uuid.UUID("3f6d1c2e-8a5b-4f0e-9d7c-2b1a0e9f8c7d")

_FORWARD = {
    Stage.REQUESTED: 0,
    Stage.SCHEDULED: 1,
    Stage.HEADED_TO_PICKUP: 2,
    Stage.HEADED_TO_DROPOFF: 3,
    Stage.COMPLETED: 4,
}
_FLYING = (Stage.SCHEDULED, Stage.HEADED_TO_PICKUP, Stage.HEADED_TO_DROPOFF)


def not_found() -> Problem:
    return Problem(404, "No delivery with that id.", kind="delivery-not-found")


class DeliveryTracking:
    def __init__(
        self,
        deliveries: DeliveryRepository,
        events: EventRepository,
        scheduler: SchedulerService,
        *,
        live_location_timeout: float,
    ) -> None:
        self._deliveries = deliveries
        self._events = events
        self._scheduler = scheduler
        self._live_location_timeout = live_location_timeout

    async def record_flight(self, delivery_id: str, report: FlightEvent) -> None:
        stage = Stage(report.stage.value)
        event = StoredEvent(
            id=_report_id(report.event_id),
            delivery_id=delivery_id,
            stage=EventKind(report.stage.value),
            time=report.time,
            location=report.location,
            source_event_id=report.event_id,
            drone_id=report.drone_id,
        )
        await self._record(event, stage)

    async def record_confirmation(self, delivery_id: str, report: Confirmation) -> None:
        event = StoredEvent(
            id=_report_id(report.event_id),
            delivery_id=delivery_id,
            stage=EventKind.COMPLETED,
            time=report.time,
            location=report.location,
            source_event_id=report.event_id,
            drone_id=report.drone_id,
            confirmation_type=report.confirmation_type,
        )
        await self._record(event, Stage.COMPLETED)

    async def _record(self, event: StoredEvent, stage: Stage) -> None:
        current = await self._deliveries.get(event.delivery_id)
        if current is None:
            raise not_found()
        if not await self._events.exists(event.delivery_id, event.id):
            if not _accepts_reports(current.delivery):
                raise Problem(
                    409,
                    f"The delivery is {current.delivery.stage.value}; it takes no flight reports.",
                    kind="delivery-not-flying",
                )
            await store_event(self._events, event)
        await self._apply(current, event, stage)

    async def _apply(self, current: Versioned | None, event: StoredEvent, stage: Stage) -> None:
        while current is not None:
            delivery = current.delivery
            if delivery.stage not in _FORWARD:
                return  # finished otherwise (cancelled, failed): the report is kept, nothing moves
            changes: dict[str, object] = {}
            if _FORWARD[stage] > _FORWARD[delivery.stage]:
                changes["stage"] = stage
            if delivery.last_known_at is None or event.time >= delivery.last_known_at:
                changes["last_known_location"] = event.location
                changes["last_known_at"] = event.time
            if not changes:
                return
            try:
                await self._deliveries.replace(delivery.changed(**changes), current.etag)
                return
            except PreconditionFailedError:
                current = await self._deliveries.get(event.delivery_id)

    async def status(self, delivery_id: str) -> DeliveryStatus:
        delivery = await self._delivery(delivery_id)
        location: Location | None = delivery.last_known_location
        pickup_eta, dropoff_eta = delivery.pickup_eta, delivery.dropoff_eta
        if delivery.stage in _FLYING:
            flight = await self._scheduler.track(delivery_id, deadline=self._live_location_timeout)
            if flight is not None:
                location = flight.location or location
                pickup_eta = flight.pickup_eta or pickup_eta
                dropoff_eta = flight.dropoff_eta or dropoff_eta
        return DeliveryStatus(
            stage=delivery.stage,
            drone_id=delivery.drone_id,
            last_known_location=location,
            pickup_eta=pickup_eta,
            dropoff_eta=dropoff_eta,
        )

    async def events(self, delivery_id: str) -> list[TrackingEvent]:
        delivery = await self._delivery(delivery_id)
        stored = {event.id: event for event in await self._events.of(delivery_id)}
        # Events still in the outbox are committed with their change; they are listed at once.
        for event in delivery.outbox:
            stored.setdefault(event.id, event)
        return [event_view(event) for event in sorted(stored.values(), key=_in_order)]

    async def _delivery(self, delivery_id: str) -> StoredDelivery:
        current = await self._deliveries.get(delivery_id)
        if current is None:
            raise not_found()
        return current.delivery


def _report_id(event_id: str) -> str:
    return uuid.uuid5(_REPORTS, event_id).hex


def _accepts_reports(delivery: StoredDelivery) -> bool:
    """A drone may be flying for the delivery: it is scheduled, or being scheduled and not failing.

    The scheduler may report a flight before the workflow has recorded the assignment it answered.
    """
    if delivery.stage is Stage.REQUESTED:
        failing = delivery.work is not None and delivery.work.goal is Goal.COMPENSATE
        return delivery.progress.assignment_requested and not failing
    return delivery.stage in _FLYING


def _in_order(event: StoredEvent) -> tuple[datetime, datetime]:
    return (event.time, event.recorded_at)
