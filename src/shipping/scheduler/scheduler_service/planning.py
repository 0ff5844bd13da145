"""Which drone flies a delivery: the nearest free drone that can carry the package and fly the
round trip (base, pickup, drop-off, base) within its range.

Expedited deliveries come first when drones are scarce: a non-expedited delivery may not take one
of the last free drones kept in reserve (a share of the fleet), an expedited one may take any.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime

from scheduler_service.flights import route_km
from scheduler_service.geo import distance_km
from scheduler_service.models import AssignmentRequest, PackageSize
from scheduler_service.records import DroneRecord

RETRY_AFTER_LIMITS = (1, 60)
"""The bounds of the Retry-After a busy fleet answers, in seconds."""


class UndeliverableError(Exception):
    """No drone of the fleet could ever fly the delivery, free or not (422)."""


class NoDroneFreeError(Exception):
    """Drones that could fly the delivery exist, but none may take it now (503)."""

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def reserve_size(fleet_size: int, share: float) -> int:
    """How many free drones non-expedited deliveries leave for expedited ones."""
    return math.floor(fleet_size * share)


def can_carry(drone: DroneRecord, size: PackageSize, weight: float) -> bool:
    return drone.max_payload_kg >= weight and drone.max_size.rank >= size.rank


def able_drones(fleet: Sequence[DroneRecord], request: AssignmentRequest) -> list[DroneRecord]:
    """The drones that could fly the delivery when free; raise UndeliverableError saying why not."""
    size, weight = request.package_detail.size, request.package_detail.weight
    carriers = [drone for drone in fleet if can_carry(drone, size, weight)]
    if not carriers:
        raise UndeliverableError(_why_nobody_carries(fleet, size, weight))
    pickup, dropoff = request.pickup.point, request.dropoff.point
    able = [d for d in carriers if route_km(d.base, pickup, dropoff) <= d.range_km]
    if not able:
        shortest = min(route_km(d.base, pickup, dropoff) for d in carriers)
        longest = max(d.range_km for d in carriers)
        raise UndeliverableError(
            f"The round trip is out of range of every drone that can carry the package: the "
            f"shortest, from the nearest base, is {shortest:.1f} km, and the longest range among "
            f"those drones is {longest:g} km."
        )
    return able


def choose_drone(
    fleet: Sequence[DroneRecord],
    request: AssignmentRequest,
    *,
    now: datetime,
    reserve_share: float,
) -> DroneRecord:
    """The drone to claim for the request, in the order of `preference`."""
    able = able_drones(fleet, request)
    free = [drone for drone in able if drone.flight is None]
    if not free:
        wait = retry_after(able, now)
        raise NoDroneFreeError(
            f"Every drone that can fly this delivery is busy; the first is due back in {wait} s.",
            wait,
        )
    reserve = reserve_size(len(fleet), reserve_share)
    if not request.expedited and sum(drone.flight is None for drone in fleet) <= reserve:
        wait = retry_after(fleet, now)
        raise NoDroneFreeError(
            f"The last {reserve} free drones are kept for expedited deliveries; the next drone "
            f"is due back in {wait} s.",
            wait,
        )
    return min(free, key=preference(request))


def preference(request: AssignmentRequest) -> Callable[[DroneRecord], tuple[float, float, str]]:
    """The order drones are chosen in: the nearest first; of drones equally near (one base), the
    one that lifts least, so that heavy lifters stay free for heavy packages."""
    pickup = request.pickup.point
    return lambda drone: (distance_km(drone.base, pickup), drone.max_payload_kg, drone.id)


def retry_after(drones: Sequence[DroneRecord], now: datetime) -> int:
    """Seconds until the first of these drones is back at its base, within RETRY_AFTER_LIMITS."""
    landings = [drone.flight.stops[-1].at for drone in drones if drone.flight is not None]
    low, high = RETRY_AFTER_LIMITS
    if not landings:
        return low
    return max(low, min(high, math.ceil((min(landings) - now).total_seconds())))


def _why_nobody_carries(fleet: Sequence[DroneRecord], size: PackageSize, weight: float) -> str:
    heaviest = max((drone.max_payload_kg for drone in fleet), default=0.0)
    if weight > heaviest:
        return f"No drone of the fleet can carry {weight:g} kg; the largest payload is {heaviest:g} kg."
    if not any(drone.max_size.rank >= size.rank for drone in fleet):
        return f"No drone of the fleet takes {size} packages."
    return f"No drone of the fleet can carry a {size} package of {weight:g} kg."
