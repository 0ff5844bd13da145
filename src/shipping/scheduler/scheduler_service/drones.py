"""What can happen to a drone, each step a pure function from one version of its document to the next.

Requests and the background loop apply these steps with optimistic writes (`Repository.change`), so
of two replicas that try a step on one drone at once, exactly one succeeds and the other decides
again on what the first wrote. That is how a drone is never claimed twice and a milestone never
handled twice.

A milestone's consequences (notifications, the utilization record) are written into the drone's own
document, in the same write that moves it past the milestone (`pending`); the background loop then
copies them to their containers under ids derived from the flight and the stop, and clears them. So a
consequence exists exactly when its milestone was passed, even if a replica dies in between.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import UTC, datetime

from scheduler_service.flights import (
    distance_of,
    has_departed,
    is_aboard,
    last_passed,
    plan_return,
    position,
)
from scheduler_service.geo import KM_PER_MILE, GeoPoint
from scheduler_service.models import (
    AssignmentStage,
    DeliveryConfirmation,
    DroneStatus,
    Location,
    TrackingEvent,
)
from scheduler_service.records import (
    DroneRecord,
    FlightPlan,
    FlightRecord,
    NotificationRecord,
    PendingWrite,
    Stop,
    StopKind,
    stored_time,
)
from scheduler_service.store import NOTIFICATIONS, UTILIZATION


class DroneBusyError(Exception):
    """The drone flies another plan."""


class PackageAboardError(Exception):
    """The drone has picked the package up: the delivery can no longer be changed or cancelled."""


def claim(drone: DroneRecord, plan: FlightPlan, *, now: datetime) -> DroneRecord | None:
    """The drone reserved for the plan; None if it already is; DroneBusyError if it flies another,
    or if it was taken and freed again since the plan was made (the plan's times assumed it free
    all along, so they would overlap what it did meanwhile)."""
    if drone.flight is not None:
        if drone.flight.plan_id == plan.plan_id:
            return None
        raise DroneBusyError(drone.id)
    if drone.free_since is not None and drone.free_since > plan.planned_at:
        raise DroneBusyError(drone.id)
    claimed = drone.model_copy(
        update={"delivery_id": plan.delivery_id, "claimed_at": now, "flight": plan, "next_stop": 0}
    )
    return _scheduled(claimed, now)


def recall(
    drone: DroneRecord, plan_id: str, *, now: datetime, speedup: float, even_aboard: bool = False
) -> DroneRecord | None:
    """The drone released from a delivery's plan: free at once if it has not left yet, otherwise
    flying home empty from where it is. None if it does not fly that plan for a delivery (any more).

    Refused with PackageAboardError once the package is aboard, unless `even_aboard` (a claim that
    no assignment refers to carries no real package).
    """
    flight = drone.flight
    if flight is None or flight.plan_id != plan_id or drone.delivery_id is None:
        return None
    if is_aboard(flight, now) and not even_aboard:
        raise PackageAboardError(drone.id)
    if not has_departed(flight, now):
        return _scheduled(_on_the_ground(drone, now), now)
    home = plan_return(drone, flight, now=now, speedup=speedup)
    return _scheduled(
        drone.model_copy(update={"delivery_id": None, "flight": home, "next_stop": 1}), now
    )


def due_stop(drone: DroneRecord, now: datetime) -> Stop | None:
    """The next stop of the drone's flight if its time has come and it has not been handled."""
    flight = drone.flight
    if flight is None or drone.next_stop >= len(flight.stops):
        return None
    stop = flight.stops[drone.next_stop]
    return stop if stop.at <= now else None


def pass_stop(drone: DroneRecord, *, now: datetime) -> DroneRecord:
    """The drone moved past its next stop, with what that stop produces added to `pending`."""
    flight = drone.flight
    assert flight is not None, "only a flying drone passes stops"
    index = drone.next_stop
    kind = flight.stops[index].kind
    pending = [*drone.pending, *_consequences(drone, flight, index)]
    if kind is StopKind.LANDING:
        landed = _on_the_ground(drone, now).model_copy(update={"pending": pending})
        return _scheduled(landed, now)
    update: dict[str, object] = {"next_stop": index + 1, "pending": pending}
    if kind is StopKind.DROPOFF:
        update["delivery_id"] = None  # delivered: the drone flies home and serves nobody
    return _scheduled(drone.model_copy(update=update), now)


def without_pending(
    drone: DroneRecord, copied: Collection[tuple[str, str]], *, now: datetime
) -> DroneRecord | None:
    """The drone without the pending writes that have been copied ((container, id) pairs)."""
    left = [w for w in drone.pending if (w.container, w.document["id"]) not in copied]
    if len(left) == len(drone.pending):
        return None
    return _scheduled(drone.model_copy(update={"pending": left}), now)


def status_of(drone: DroneRecord, now: datetime) -> DroneStatus:
    flight = drone.flight
    if flight is None:
        return DroneStatus.AVAILABLE
    match last_passed(flight, now):
        case None:
            return DroneStatus.RESERVED
        case StopKind.DEPARTURE:
            return DroneStatus.HEADED_TO_PICKUP
        case StopKind.PICKUP:
            return DroneStatus.HEADED_TO_DROPOFF
        case _:
            return DroneStatus.RETURNING


def location_of(drone: DroneRecord, now: datetime) -> GeoPoint:
    return drone.base if drone.flight is None else position(drone.flight, now)


def _on_the_ground(drone: DroneRecord, now: datetime) -> DroneRecord:
    return drone.model_copy(
        update={
            "delivery_id": None,
            "claimed_at": None,
            "flight": None,
            "next_stop": 0,
            "free_since": now,
        }
    )


def _scheduled(drone: DroneRecord, now: datetime) -> DroneRecord:
    """The drone with `nextMilestoneAt` set to when the background loop should next look at it."""
    due: datetime | None = None
    if drone.pending:
        due = now
    elif drone.flight is not None and drone.next_stop < len(drone.flight.stops):
        due = drone.flight.stops[drone.next_stop].at
    return drone.model_copy(update={"next_milestone_at": due})


def _consequences(drone: DroneRecord, flight: FlightPlan, index: int) -> list[PendingWrite]:
    stop = flight.stops[index]
    delivery_id, owner_id = flight.delivery_id, flight.owner_id
    if delivery_id is None or owner_id is None:
        return []  # an empty flight home tells nobody anything
    event_id = str(uuid.uuid5(uuid.UUID(flight.plan_id), stop.kind))
    location = Location.of(stop.location)
    body: TrackingEvent | DeliveryConfirmation
    match stop.kind:
        case StopKind.DEPARTURE:
            body = TrackingEvent(
                event_id=event_id,
                stage=AssignmentStage.HEADED_TO_PICKUP,
                time=stop.at,
                location=location,
                drone_id=drone.id,
            )
        case StopKind.PICKUP:
            body = TrackingEvent(
                event_id=event_id,
                stage=AssignmentStage.HEADED_TO_DROPOFF,
                time=stop.at,
                location=location,
                drone_id=drone.id,
            )
        case StopKind.DROPOFF:
            body = DeliveryConfirmation(
                event_id=event_id,
                time=stop.at,
                location=location,
                drone_id=drone.id,
                confirmation_type=flight.confirmation_type,
            )
        case _:
            return []
    notification = NotificationRecord(
        id=event_id,
        delivery_id=delivery_id,
        route="confirmations" if isinstance(body, DeliveryConfirmation) else "events",
        body=body.model_dump(mode="json", exclude_none=True),
        order_key=f"{stored_time(stop.at)}/{index}",
        next_attempt_at=stop.at,
        traceparent=flight.traceparent,
    )
    writes = [PendingWrite(container=NOTIFICATIONS.name, document=notification.as_document())]
    if stop.kind is StopKind.DROPOFF:
        km = distance_of(flight)
        completed_at = stop.at.astimezone(UTC)
        record = FlightRecord(
            id=flight.plan_id,
            owner_id=owner_id,
            delivery_id=delivery_id,
            drone_id=drone.id,
            year=completed_at.year,
            month=completed_at.month,
            traveled_miles=km / KM_PER_MILE,
            assigned_hours=km / drone.speed_kmh,
            completed_at=completed_at,
        )
        writes.append(PendingWrite(container=UTILIZATION.name, document=record.as_document()))
    return writes
