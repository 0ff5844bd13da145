"""The drone fleet: which drones there are, and seeding them into the store at first start.

Drone n is drawn from a random generator seeded with n, so the same size always gives the same
fleet, a larger size adds drones without changing the first ones, and replicas that seed at the
same time write identical documents (whichever create lands first wins; the other finds it there).
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

from scheduler_service.geo import GeoPoint
from scheduler_service.models import PackageSize
from scheduler_service.planning import FleetIndex
from scheduler_service.records import DroneRecord
from scheduler_service.store import Repository
from servicekit.stores.errors import StoreUnavailableError

log = logging.getLogger(__name__)

# Drone bases across the Seattle metro area, ordered so that any first few are spread far apart.
BASES = (
    ("SoDo", 47.5801, -122.3344),
    ("Northgate", 47.7062, -122.3259),
    ("Bellevue", 47.6101, -122.2015),
    ("West Seattle", 47.5612, -122.3868),
    ("Ballard", 47.6687, -122.3843),
    ("Renton", 47.4829, -122.2171),
    ("Kirkland", 47.6769, -122.2060),
    ("Capitol Hill", 47.6232, -122.3196),
    ("Burien", 47.4704, -122.3468),
    ("Shoreline", 47.7557, -122.3415),
    ("Redmond", 47.6740, -122.1215),
    ("Beacon Hill", 47.5677, -122.3110),
    ("University District", 47.6615, -122.3128),
    ("Mercer Island", 47.5707, -122.2221),
    ("Lake City", 47.7196, -122.2948),
    ("Tukwila", 47.4740, -122.2610),
    ("Fremont", 47.6510, -122.3500),
    ("Bothell", 47.7601, -122.2054),
    ("Rainier Beach", 47.5223, -122.2690),
    ("Magnolia", 47.6390, -122.3990),
)


@dataclass(frozen=True)
class DroneClass:
    """A kind of drone. Within a class, a drone that lifts more flies slower and less far."""

    model: str
    max_size: PackageSize
    payload_kg: tuple[float, float]
    speed_kmh: tuple[float, float]
    range_km: tuple[float, float]


COURIER_S = DroneClass("Fabrikam Courier S", PackageSize.SMALL, (2, 5), (70, 90), (28, 40))
COURIER_M = DroneClass("Fabrikam Courier M", PackageSize.MEDIUM, (5, 12), (55, 75), (20, 32))
HAULER_L = DroneClass("Fabrikam Hauler L", PackageSize.LARGE, (12, 25), (40, 55), (10, 20))

# The classes in fleet order: of every ten drones four are small couriers, four medium, two haulers.
CLASS_CYCLE = (
    HAULER_L,
    COURIER_S,
    COURIER_M,
    COURIER_S,
    COURIER_M,
    HAULER_L,
    COURIER_S,
    COURIER_M,
    COURIER_S,
    COURIER_M,
)

HEAVY_LIFT_KG = 25.0
"""The largest payload: the fleet always has a drone that carries it, whatever its size."""


def drone_id(index: int) -> str:
    return f"drone-{index + 1:03d}"


def make_drone(index: int) -> DroneRecord:
    """Drone `index` of every fleet. Drone 0 is the heavy lifter: 25 kg, Large, its full range."""
    rng = random.Random(f"fabrikam-drone-{index}")
    _name, latitude, longitude = BASES[index % len(BASES)]
    kind = CLASS_CYCLE[index % len(CLASS_CYCLE)]
    lift = 1.0 if index == 0 else rng.random()  # 0: the lightest of its class, 1: the heaviest
    jitter = rng.uniform(-0.1, 0.1)
    return DroneRecord(
        id=drone_id(index),
        model=kind.model,
        max_payload_kg=round(_between(kind.payload_kg, lift) * 2) / 2,
        max_size=kind.max_size,
        speed_kmh=round(_between(kind.speed_kmh, 1 - lift + jitter)),
        range_km=round(_between(kind.range_km, 1 - lift + jitter if index else 1.0)),
        base=GeoPoint(latitude, longitude),
    )


def make_fleet(size: int) -> list[DroneRecord]:
    return [make_drone(index) for index in range(size)]


def _between(bounds: tuple[float, float], fraction: float) -> float:
    low, high = bounds
    return low + (high - low) * min(1.0, max(0.0, fraction))


class Fleet:
    """The fleet in the store: seeded in the background at start; requests wait for it briefly.

    What a drone is (its model, payload, size, speed, range and base) never changes once it is
    stored, so the fleet keeps it from seeding on, grouped by base (`index`): a request ranks the
    drones with it and reads from the store only the drones it considers, not the whole fleet. A
    drone that another replica adds later (with a larger fleet size) is flown by that replica until
    this one restarts.
    """

    def __init__(self, drones: Repository[DroneRecord], size: int) -> None:
        self._drones = drones
        self._size = size
        self._seeded = asyncio.Event()
        self.index = FleetIndex(())
        """Every drone as it was seeded: its specification (its flight is read from the store)."""

    async def seed(self) -> int:
        """Create the drones the store does not have yet (never changes one); answer how many."""
        existing = {found.record.id: found.record for found in await self._drones.query()}
        added = 0
        for drone in make_fleet(self._size):
            if drone.id not in existing:
                if await self._drones.create(drone):
                    added += 1
                existing[drone.id] = drone
        self.index = FleetIndex(existing.values())
        self._seeded.set()
        log.info("fleet ready: %d drones, %d added", self._size, added)
        return added

    async def wait_seeded(self, timeout: float) -> None:
        if self._seeded.is_set():
            return
        try:
            async with asyncio.timeout(timeout):
                await self._seeded.wait()
        except TimeoutError:
            raise StoreUnavailableError("the fleet is still being prepared") from None
