"""Flights at a high speed-up, with a real HTTP server standing in for the delivery service."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from scheduler_harness import (
    NORTHGATE,
    SODO,
    DeliveryReceiver,
    delivery,
    location,
    scheduler_client,
    scheduler_settings,
    serve_scheduler,
    until,
    wait_for_the_fleet_at_home,
)

from scheduler_service.geo import KM_PER_MILE
from servicekit.testing import free_port, serve_in_thread

TRACKED = ["HeadedToPickup", "HeadedToDropoff", "Confirmation"]


async def tracked(delivery_service: DeliveryReceiver, delivery_id: str) -> None:
    """Wait until everything the delivery should hear has taken effect, in order."""
    await until(lambda: delivery_service.taken(delivery_id) == TRACKED)


FAST = {"sim_speedup": 1500, "notification_max_backoff_seconds": 0.3}


async def test_a_delivery_is_tracked_and_confirmed_in_order(
    tmp_path: Path, receiver: tuple[str, DeliveryReceiver]
) -> None:
    url, delivery_service = receiver
    body = delivery("d1", confirmationRequired="fingerprint")
    async with scheduler_client(tmp_path, delivery_service_url=url, **FAST) as scheduler:
        assigned = (await scheduler.put("/api/dronedeliveries/d1", json=body)).json()

        await tracked(delivery_service, "d1")
        await wait_for_the_fleet_at_home(scheduler)
        landed = (await scheduler.get(f"/api/drones/{assigned['droneId']}")).json()

    heading_to_pickup, heading_to_dropoff, confirmation = delivery_service.bodies("d1")
    assert len({b["eventId"] for b in (heading_to_pickup, heading_to_dropoff, confirmation)}) == 3
    assert {b["droneId"] for b in (heading_to_pickup, heading_to_dropoff, confirmation)} == {
        assigned["droneId"]
    }
    assert heading_to_pickup["location"] == location(SODO)
    assert heading_to_dropoff["location"] == body["pickup"]
    assert datetime.fromisoformat(heading_to_dropoff["time"]) == datetime.fromisoformat(
        assigned["pickupEta"]
    )
    assert confirmation["location"] == body["dropoff"]
    assert confirmation["confirmationType"] == "FingerPrint"
    assert datetime.fromisoformat(confirmation["time"]) == datetime.fromisoformat(
        assigned["dropoffEta"]
    )
    assert len(delivery_service.posts) == 3, "each notification was sent once"
    assert (landed["status"], landed["location"]) == ("Available", landed["base"])


async def test_notifications_wait_for_a_delivery_service_that_is_down(tmp_path: Path) -> None:
    port = free_port()  # where the delivery service will listen, once it is up
    delivery_service = DeliveryReceiver()
    async with scheduler_client(
        tmp_path, delivery_service_url=f"http://127.0.0.1:{port}", **FAST
    ) as scheduler:
        for delivery_id, near in (("d1", SODO), ("d2", NORTHGATE)):
            response = await scheduler.put(
                f"/api/dronedeliveries/{delivery_id}", json=delivery(delivery_id, near=near)
            )
            assert response.status_code == 201
        await wait_for_the_fleet_at_home(scheduler)  # delivered while nobody listened

        with serve_in_thread(delivery_service.app(), port=port):
            for delivery_id in ("d1", "d2"):
                await tracked(delivery_service, delivery_id)
            posts = len(delivery_service.posts)
            await asyncio.sleep(0.3)

    assert len(delivery_service.posts) == posts, "nothing is sent once acknowledged"
    for delivery_id in ("d1", "d2"):
        stages = [b.get("stage", "Confirmation") for b in delivery_service.bodies(delivery_id)]
        assert stages == TRACKED, "in order, each sent once now that it is acknowledged"


async def test_failed_posts_are_retried_until_acknowledged(
    tmp_path: Path, receiver: tuple[str, DeliveryReceiver]
) -> None:
    url, delivery_service = receiver
    delivery_service.failures_left = 4
    async with scheduler_client(tmp_path, delivery_service_url=url, **FAST) as scheduler:
        await scheduler.put("/api/dronedeliveries/d1", json=delivery("d1"))

        await tracked(delivery_service, "d1")

    assert delivery_service.failures_left == 0
    stages = [b.get("stage", "Confirmation") for b in delivery_service.bodies("d1")]
    assert stages[-3:] == TRACKED
    assert stages[:4] == ["HeadedToPickup"] * 4, "the next waits while the first is refused"


async def test_what_the_delivery_service_does_not_know_is_sent_once_and_dropped(
    tmp_path: Path, receiver: tuple[str, DeliveryReceiver]
) -> None:
    url, delivery_service = receiver
    delivery_service.unknown_deliveries.add("ghost")
    async with scheduler_client(tmp_path, delivery_service_url=url, **FAST) as scheduler:
        await scheduler.put("/api/dronedeliveries/ghost", json=delivery("ghost"))
        await until(lambda: len(delivery_service.posts) == 3)
        await wait_for_the_fleet_at_home(scheduler)
        await asyncio.sleep(0.3)

    assert [b.get("stage", "Confirmation") for b in delivery_service.bodies("ghost")] == TRACKED


@pytest.fixture
def two_replicas(
    tmp_path: Path, receiver: tuple[str, DeliveryReceiver]
) -> Iterator[tuple[str, str]]:
    settings = scheduler_settings(tmp_path, delivery_service_url=receiver[0], **FAST)
    with ExitStack() as replicas:
        yield (
            replicas.enter_context(serve_scheduler(settings)),
            replicas.enter_context(serve_scheduler(settings)),
        )


async def test_two_replicas_pass_each_milestone_once(
    two_replicas: tuple[str, str], receiver: tuple[str, DeliveryReceiver]
) -> None:
    _, delivery_service = receiver
    deliveries = {"d1": SODO, "d2": NORTHGATE, "d3": SODO, "d4": NORTHGATE}
    async with (
        httpx.AsyncClient(base_url=two_replicas[0]) as one,
        httpx.AsyncClient(base_url=two_replicas[1]) as other,
    ):
        assigned = await asyncio.gather(
            *(
                (one if n % 2 else other).put(
                    f"/api/dronedeliveries/{d}", json=delivery(d, near=near, expedited=True)
                )
                for n, (d, near) in enumerate(deliveries.items())
            )
        )
        assert [r.status_code for r in assigned] == [201] * 4
        for delivery_id in deliveries:
            await tracked(delivery_service, delivery_id)
        await wait_for_the_fleet_at_home(one)
        now = datetime.now(UTC)
        utilization = (
            await other.get(
                "/api/dronedeliveries/utilization",
                params={"ownerId": "fabrikam", "year": now.year, "month": now.month},
            )
        ).json()

    for delivery_id in deliveries:
        bodies = delivery_service.bodies(delivery_id)
        assert len({b["eventId"] for b in bodies}) == 3, "one event per milestone"
    miles = sum(r.json()["distanceKm"] for r in assigned) / KM_PER_MILE
    assert utilization["traveledMiles"] == pytest.approx(miles, rel=1e-3), "recorded once each"
