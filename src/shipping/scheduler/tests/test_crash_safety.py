"""A request that dies half way leaks no drone.

Each test writes, through the store a second replica would use, exactly what a request leaves behind
when its process dies at one step of the assignment (see `scheduler_service.dispatch`), then checks
what the running scheduler makes of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from scheduler_harness import (
    NORTHGATE,
    delivery,
    drone,
    scheduler_settings,
    serve_scheduler,
    wait_for_drone,
)

from scheduler_service.drones import claim
from scheduler_service.flights import plan_delivery
from scheduler_service.models import AssignmentRequest
from scheduler_service.records import AssignmentRecord, FlightPlan
from scheduler_service.settings import SchedulerSettings
from scheduler_service.store import SchedulerStore, open_scheduler_store

GRACE = 1.0


@dataclass
class Replica:
    """A running scheduler, and a second door into its store."""

    client: httpx.AsyncClient
    store: SchedulerStore
    settings: SchedulerSettings

    async def drone(self, drone_id: str) -> dict[str, Any]:
        return await drone(self.client, drone_id)

    async def plan(self, body: dict[str, Any], drone_id: str) -> FlightPlan:
        """The plan the scheduler would make for the request with that drone."""
        found = await self.store.drones.get(drone_id, drone_id)
        assert found is not None
        request = AssignmentRequest.model_validate(body)
        return plan_delivery(
            found.record, request, now=datetime.now(UTC), speedup=self.settings.sim_speedup
        )

    async def record_assignment(self, body: dict[str, Any], plan: FlightPlan) -> None:
        """Step 1 of a request: the delivery's plan."""
        request = AssignmentRequest.model_validate(body)
        now = datetime.now(UTC)
        record = AssignmentRecord(
            id=request.delivery_id,
            delivery_id=request.delivery_id,
            owner_id=request.owner_id,
            request=request.model_dump(mode="json"),
            plan=plan,
            created_at=now,
            updated_at=now,
        )
        assert await self.store.assignments.create(record)

    async def claim(self, plan: FlightPlan) -> None:
        """Step 2 of a request: the drone's claim."""
        claimed = await self.store.drones.change(
            plan.drone_id, plan.drone_id, lambda drone: claim(drone, plan, now=datetime.now(UTC))
        )
        assert claimed is not None
        assert claimed.flight == plan


@pytest.fixture
async def replica(tmp_path: Path) -> AsyncIterator[Replica]:
    settings = scheduler_settings(tmp_path, claim_grace_seconds=GRACE)
    with serve_scheduler(settings) as url:
        async with (
            httpx.AsyncClient(base_url=url) as client,
            open_scheduler_store(settings) as store,
        ):
            assert (await client.get("/api/drones")).status_code == 200  # seeded
            yield Replica(client, store, settings)


def later(hours: float = 2) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


async def test_a_claim_no_assignment_holds_is_recalled_after_the_grace_period(
    replica: Replica,
) -> None:
    body = delivery("vanished", pickupTime=later())
    await replica.claim(await replica.plan(body, "drone-003"))
    reserved = await replica.drone("drone-003")

    freed = await wait_for_drone(replica.client, "drone-003", "Available")

    assert (reserved["status"], reserved["deliveryId"]) == ("Reserved", "vanished")
    assert freed["deliveryId"] is None


async def test_a_claim_for_a_plan_the_delivery_moved_on_from_is_recalled(
    replica: Replica,
) -> None:
    body = delivery("d1", pickupTime=later())
    kept, superseded = (
        await replica.plan(body, "drone-001"),
        await replica.plan(body, "drone-002"),
    )
    await replica.record_assignment(body, kept)
    await replica.claim(kept)
    await replica.claim(superseded)

    await wait_for_drone(replica.client, "drone-002", "Available")
    await asyncio.sleep(GRACE)  # sweeps more than once

    assert (await replica.drone("drone-001"))["deliveryId"] == "d1", "the held claim stays"
    assigned = (await replica.client.get("/api/dronedeliveries/d1")).json()
    assert assigned["droneId"] == "drone-001"


async def test_a_repeated_request_claims_the_plan_a_crashed_request_recorded(
    replica: Replica,
) -> None:
    body = delivery("d1", near=NORTHGATE, pickupTime=later())
    plan = await replica.plan(body, "drone-005")  # not the nearest: the scheduler must not choose
    await replica.record_assignment(body, plan)  # ... and the process died before the claim

    repeated = await replica.client.put("/api/dronedeliveries/d1", json=body)

    assert repeated.status_code == 200
    assert repeated.json()["droneId"] == "drone-005"
    assert datetime.fromisoformat(repeated.json()["dropoffEta"]) == plan.stops[2].at
    claimed = await replica.drone("drone-005")
    assert (claimed["status"], claimed["deliveryId"]) == ("Reserved", "d1")


async def test_a_repeated_request_finds_the_drone_a_crashed_request_claimed(
    replica: Replica,
) -> None:
    body = delivery("d1", pickupTime=later())
    plan = await replica.plan(body, "drone-005")  # not the nearest: the scheduler must not choose
    await replica.record_assignment(body, plan)
    await replica.claim(plan)  # ... and the process died before it answered

    repeated = await replica.client.put("/api/dronedeliveries/d1", json=body)
    fleet = (await replica.client.get("/api/drones")).json()

    assert repeated.status_code == 200
    assert repeated.json()["droneId"] == "drone-005"
    assert [d["id"] for d in fleet if d["deliveryId"] == "d1"] == ["drone-005"]


async def test_a_plan_recorded_too_long_ago_is_planned_again(replica: Replica) -> None:
    body = delivery("d1")  # leaves at once: a plan that old would start half flown
    plan = await replica.plan(body, "drone-009")
    stale = plan.model_copy(update={"planned_at": plan.planned_at - timedelta(minutes=1)})
    await replica.record_assignment(body, stale)

    repeated = await replica.client.put("/api/dronedeliveries/d1", json=body)

    assert repeated.status_code == 200
    assert repeated.json()["droneId"] == "drone-001", "the nearest, planned afresh"
    assert (await replica.drone("drone-009"))["status"] == "Available"


async def test_a_recorded_plan_is_not_claimed_once_its_drone_has_flown_another_delivery(
    replica: Replica,
) -> None:
    body = delivery("d1", near=NORTHGATE)
    plan = await replica.plan(body, "drone-005")
    await replica.record_assignment(body, plan)  # ... and the process died before the claim
    # Meanwhile the drone flies another delivery (a quick one) and lands again.
    other = delivery("d2", near=NORTHGATE)
    found = await replica.store.drones.get("drone-005", "drone-005")
    assert found is not None
    flight = plan_delivery(
        found.record,
        AssignmentRequest.model_validate(other),
        now=datetime.now(UTC),
        speedup=5000,
    )
    await replica.record_assignment(other, flight)
    await replica.claim(flight)
    await wait_for_drone(replica.client, "drone-005", "Available")

    repeated = await replica.client.put("/api/dronedeliveries/d1", json=body)

    # The recorded plan had the drone leave for d1 while it flew d2: d1 is planned afresh.
    assert repeated.status_code == 200
    assert repeated.json()["droneId"] == "drone-002", "the nearest, planned afresh"
    assert datetime.fromisoformat(repeated.json()["pickupEta"]) != plan.stops[1].at
