"""Flight plans: the times a drone reaches each stop, and where it is at any moment.

A flight is simulated: the drone flies its legs at its own speed, made `speedup` times faster so that
a demo finishes in seconds. Every time here is real wall-clock time. Nothing is stored while the drone
flies: its position, progress and phase are pure functions of the plan and the clock.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from scheduler_service.geo import GeoPoint, distance_km, point_between
from scheduler_service.models import AssignmentRequest
from scheduler_service.records import DroneRecord, FlightPlan, Stop, StopKind


def utc_now() -> datetime:
    return datetime.now(UTC)


def route_km(base: GeoPoint, pickup: GeoPoint, dropoff: GeoPoint) -> float:
    """The whole round trip a delivery asks of a drone: base, pickup, drop-off, base."""
    return distance_km(base, pickup) + distance_km(pickup, dropoff) + distance_km(dropoff, base)


def flying_time(km: float, speed_kmh: float, speedup: float) -> timedelta:
    """How long, in real time, the simulated drone takes for `km`."""
    return timedelta(hours=km / speed_kmh / speedup)


def plan_delivery(
    drone: DroneRecord,
    request: AssignmentRequest,
    *,
    now: datetime,
    speedup: float,
    traceparent: str | None = None,
) -> FlightPlan:
    """The drone's flight for the request. It leaves at once, or later so as to reach the pickup at
    the requested pickup time; it is reserved from now either way."""
    pickup, dropoff = request.pickup.point, request.dropoff.point

    def leg(start: GeoPoint, end: GeoPoint) -> timedelta:
        return flying_time(distance_km(start, end), drone.speed_kmh, speedup)

    departure = now
    if request.pickup_time is not None:
        departure = max(now, request.pickup_time - leg(drone.base, pickup))
    at_pickup = departure + leg(drone.base, pickup)
    at_dropoff = at_pickup + leg(pickup, dropoff)
    landing = at_dropoff + leg(dropoff, drone.base)
    return FlightPlan(
        plan_id=uuid.uuid4().hex,
        drone_id=drone.id,
        delivery_id=request.delivery_id,
        owner_id=request.owner_id,
        confirmation_type=request.confirmation_required,
        planned_at=now,
        traceparent=traceparent,
        stops=[
            Stop(kind=StopKind.DEPARTURE, location=drone.base, at=departure),
            Stop(kind=StopKind.PICKUP, location=pickup, at=at_pickup),
            Stop(kind=StopKind.DROPOFF, location=dropoff, at=at_dropoff),
            Stop(kind=StopKind.LANDING, location=drone.base, at=landing),
        ],
    )


def plan_return(
    drone: DroneRecord, flight: FlightPlan, *, now: datetime, speedup: float
) -> FlightPlan:
    """An empty flight home from wherever the drone is on `flight` now."""
    here = position(flight, now)
    return FlightPlan(
        plan_id=uuid.uuid4().hex,
        drone_id=drone.id,
        planned_at=now,
        stops=[
            Stop(kind=StopKind.RECALL, location=here, at=now),
            Stop(
                kind=StopKind.LANDING,
                location=drone.base,
                at=now + flying_time(distance_km(here, drone.base), drone.speed_kmh, speedup),
            ),
        ],
    )


def distance_of(flight: FlightPlan) -> float:
    return sum(distance_km(a.location, b.location) for a, b in pairwise(flight.stops))


def last_passed(flight: FlightPlan, now: datetime) -> StopKind | None:
    """The last stop the drone has reached by now; None before it leaves."""
    passed = [stop.kind for stop in flight.stops if stop.at <= now]
    return passed[-1] if passed else None


def has_departed(flight: FlightPlan, now: datetime) -> bool:
    return flight.stops[0].at <= now


def is_aboard(flight: FlightPlan, now: datetime) -> bool:
    """Whether the drone has picked the package up (and so a delivery can no longer be changed)."""
    pickup = flight.stop(StopKind.PICKUP)
    return pickup is not None and pickup.at <= now


def position(flight: FlightPlan, now: datetime) -> GeoPoint:
    for start, end in pairwise(flight.stops):
        if start.at <= now < end.at:
            return point_between(start.location, end.location, _fraction(start, end, now))
    return flight.stops[0].location if now < flight.stops[0].at else flight.stops[-1].location


def progress(flight: FlightPlan, now: datetime) -> float:
    """How much of the route's distance has been flown by now, 0..1."""
    legs = [
        (start, end, distance_km(start.location, end.location))
        for start, end in pairwise(flight.stops)
    ]
    total = sum(km for _, _, km in legs)
    if total == 0:
        return 1.0 if now >= flight.stops[-1].at else 0.0
    flown = sum(km * _fraction(start, end, now) for start, end, km in legs)
    return min(1.0, flown / total)


def _fraction(start: Stop, end: Stop, now: datetime) -> float:
    if now >= end.at:
        return 1.0
    if now <= start.at:
        return 0.0
    return (now - start.at) / (end.at - start.at)
