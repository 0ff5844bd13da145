"""The fleet: what it is made of, and seeding it into a real store, also from two replicas at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from scheduler_harness import scheduler_settings

from scheduler_service.fleet import BASES, HEAVY_LIFT_KG, Fleet, make_fleet
from scheduler_service.models import PackageSize
from scheduler_service.store import open_scheduler_store
from servicekit.stores.errors import StoreUnavailableError

# The fleet area (CONTRACT): the Seattle metro area.
LATITUDES, LONGITUDES = (47.45, 47.78), (-122.45, -122.10)


def test_the_same_size_gives_the_same_fleet_and_a_larger_one_only_adds() -> None:
    assert make_fleet(20) == make_fleet(20)
    assert make_fleet(25)[:20] == make_fleet(20)
    assert len({drone.id for drone in make_fleet(60)}) == 60


def test_the_default_fleet_varies_within_realistic_bounds() -> None:
    fleet = make_fleet(20)

    assert all(2 <= drone.max_payload_kg <= 25 for drone in fleet)
    assert all(40 <= drone.speed_kmh <= 90 for drone in fleet)
    assert all(10 <= drone.range_km <= 40 for drone in fleet)
    assert {drone.max_size for drone in fleet} == set(PackageSize)
    assert len({drone.max_payload_kg for drone in fleet}) >= 10
    assert len({drone.base for drone in fleet}) == len(BASES), "one base per neighbourhood"
    for drone in fleet:
        assert LATITUDES[0] <= drone.base.latitude <= LATITUDES[1]
        assert LONGITUDES[0] <= drone.base.longitude <= LONGITUDES[1]


@pytest.mark.parametrize("size", [1, 2, 7, 20, 100])
def test_every_fleet_has_a_drone_for_the_heaviest_largest_package(size: int) -> None:
    fleet = make_fleet(size)

    assert any(
        drone.max_payload_kg >= HEAVY_LIFT_KG and drone.max_size is PackageSize.LARGE
        for drone in fleet
    )


def test_heavier_lifters_of_a_class_fly_slower() -> None:
    haulers = sorted(
        (d for d in make_fleet(100) if d.max_size is PackageSize.LARGE),
        key=lambda d: d.max_payload_kg,
    )

    lightest, heaviest = haulers[: len(haulers) // 3], haulers[-len(haulers) // 3 :]
    assert sum(d.speed_kmh for d in lightest) / len(lightest) > sum(
        d.speed_kmh for d in heaviest
    ) / len(heaviest)


async def test_two_replicas_seeding_at_once_make_one_fleet(tmp_path: Path) -> None:
    settings = scheduler_settings(tmp_path, fleet_size=20)
    async with (
        open_scheduler_store(settings) as one,
        open_scheduler_store(settings) as other,
    ):
        added = await asyncio.gather(Fleet(one.drones, 20).seed(), Fleet(other.drones, 20).seed())
        stored = sorted((found.record for found in await one.drones.query()), key=lambda d: d.id)

    assert sum(added) == 20
    assert stored == make_fleet(20)


async def test_seeding_keeps_the_drones_that_are_there(tmp_path: Path) -> None:
    settings = scheduler_settings(tmp_path)
    async with open_scheduler_store(settings) as store:
        await Fleet(store.drones, 3).seed()
        first = await store.drones.get("drone-001", "drone-001")
        assert first is not None
        await store.drones.replace(first, first.record.model_copy(update={"delivery_id": "d1"}))

        added = await Fleet(store.drones, 5).seed()
        kept = await store.drones.get("drone-001", "drone-001")

    assert added == 2
    assert kept is not None
    assert kept.record.delivery_id == "d1"


async def test_requests_wait_for_the_fleet_briefly_then_answer_unavailable(
    tmp_path: Path,
) -> None:
    async with open_scheduler_store(scheduler_settings(tmp_path)) as store:
        fleet = Fleet(store.drones, 2)

        with pytest.raises(StoreUnavailableError):
            await fleet.wait_seeded(0.05)
        seeding = asyncio.create_task(fleet.seed())
        await fleet.wait_seeded(5)
        await seeding
