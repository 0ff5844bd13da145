"""Which drone flies a delivery: the nearest free drone that can carry the package and fly the
round trip (base, pickup, drop-off, base) within its range.

Expedited deliveries come first when drones are scarce: a non-expedited delivery may not take one
of the last free drones kept in reserve (a share of the fleet), an expedited one may take any.

Every drone of a base is as far from a pickup as any other, and the fleet has a few bases and many
drones: distances are computed once per base, never once per drone. `FleetIndex` keeps the fleet
grouped by base, so that a request ranks the bases and looks at their drones only as far as it
needs to.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from operator import itemgetter

from scheduler_service.flights import route_km
from scheduler_service.geo import GeoPoint, distance_km
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


def can_fly(drone: DroneRecord, size: PackageSize, weight: float, route_km: float) -> bool:
    """Whether the drone could fly a delivery of the package whose round trip is `route_km`."""
    return can_carry(drone, size, weight) and route_km <= drone.range_km


def able_drones(fleet: Sequence[DroneRecord], request: AssignmentRequest) -> list[DroneRecord]:
    """The drones that could fly the delivery when free; raise UndeliverableError saying why not."""
    size, weight = request.package_detail.size, request.package_detail.weight
    route = round_trips(request)
    able = [d for d in fleet if can_fly(d, size, weight, route(d.base))]
    if not able:
        raise UndeliverableError(why_undeliverable(fleet, request))
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

    @functools.cache  # once per base
    def distance(base: GeoPoint) -> float:
        return distance_km(base, pickup)

    return lambda drone: (distance(drone.base), *_lightest_first(drone))


def round_trips(request: AssignmentRequest) -> Callable[[GeoPoint], float]:
    """The length of the request's round trip from a base (`route_km`), computed once per base."""
    pickup, dropoff = request.pickup.point, request.dropoff.point

    @functools.cache
    def route(base: GeoPoint) -> float:
        return route_km(base, pickup, dropoff)

    return route


def retry_after(drones: Sequence[DroneRecord], now: datetime) -> int:
    """Seconds until the first of these drones is back at its base, within RETRY_AFTER_LIMITS."""
    landings = [drone.flight.stops[-1].at for drone in drones if drone.flight is not None]
    low, high = RETRY_AFTER_LIMITS
    if not landings:
        return low
    return max(low, min(high, math.ceil((min(landings) - now).total_seconds())))


def why_undeliverable(fleet: Sequence[DroneRecord], request: AssignmentRequest) -> str:
    """Why no drone of the fleet could ever fly the delivery (when none could)."""
    size, weight = request.package_detail.size, request.package_detail.weight
    carriers = [drone for drone in fleet if can_carry(drone, size, weight)]
    if not carriers:
        return _why_nobody_carries(fleet, size, weight)
    route = round_trips(request)
    shortest = min(route(d.base) for d in carriers)
    longest = max(d.range_km for d in carriers)
    return (
        f"The round trip is out of range of every drone that can carry the package: the "
        f"shortest, from the nearest base, is {shortest:.1f} km, and the longest range among "
        f"those drones is {longest:g} km."
    )


class FleetIndex:
    """The fleet's drones grouped by base, to rank them for a request (see the module's docstring).

    It holds what a drone is, never what it does: which of the drones it ranks is free is read
    from the store.
    """

    def __init__(self, fleet: Iterable[DroneRecord]) -> None:
        self.drones = sorted(fleet, key=lambda drone: drone.id)
        stationed: dict[GeoPoint, list[DroneRecord]] = {}
        for drone in self.drones:
            stationed.setdefault(drone.base, []).append(drone)
        self._bases = [
            (base, sorted(drones, key=_lightest_first)) for base, drones in stationed.items()
        ]

    def able(self, request: AssignmentRequest) -> Iterable[DroneRecord]:
        """What `sorted(able_drones(drones, request), key=preference(request))` answers, produced
        as it is iterated (again from the first at every iteration); UndeliverableError as
        `able_drones` raises it."""
        ranked = _Ranked(self._bases, request)
        if next(iter(ranked), None) is None:
            raise UndeliverableError(why_undeliverable(self.drones, request))
        return ranked


class _Ranked:
    """The able drones for one request, nearest base first."""

    def __init__(
        self, bases: Iterable[tuple[GeoPoint, list[DroneRecord]]], request: AssignmentRequest
    ) -> None:
        pickup = request.pickup.point
        self._size, self._weight = request.package_detail.size, request.package_detail.weight
        self._route = round_trips(request)  # for a base when its drones are first looked at
        self._stations = sorted(
            ((distance_km(base, pickup), drones) for base, drones in bases), key=itemgetter(0)
        )

    def __iter__(self) -> Iterator[DroneRecord]:
        size, weight, route = self._size, self._weight, self._route
        for _, equally_near in itertools.groupby(self._stations, key=itemgetter(0)):
            ring = [drones for _, drones in equally_near]
            # Bases exactly as far from the pickup as each other: their drones interleave.
            drones = ring[0] if len(ring) == 1 else heapq.merge(*ring, key=_lightest_first)
            for drone in drones:
                if can_fly(drone, size, weight, route(drone.base)):
                    yield drone


def _lightest_first(drone: DroneRecord) -> tuple[float, str]:
    return drone.max_payload_kg, drone.id


def _why_nobody_carries(fleet: Sequence[DroneRecord], size: PackageSize, weight: float) -> str:
    heaviest = max((drone.max_payload_kg for drone in fleet), default=0.0)
    if weight > heaviest:
        return f"No drone of the fleet can carry {weight:g} kg; the largest payload is {heaviest:g} kg."
    if not any(drone.max_size.rank >= size.rank for drone in fleet):
        return f"No drone of the fleet takes {size} packages."
    return f"No drone of the fleet can carry a {size} package of {weight:g} kg."
