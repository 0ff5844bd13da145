"""The scheduling workflow against fake neighbours over HTTP: success, waiting, failing, undoing."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from delivery_testkit import (
    FakePackageService,
    FakeScheduler,
    delivery,
    event_stages,
    eventually,
    reach_stage,
    request_delivery,
)

from delivery_service.app import create_app
from delivery_service.settings import DeliverySettings
from servicekit.testing import serve_in_thread


async def test_a_request_gets_its_package_registered_and_a_drone(
    client: httpx.AsyncClient, packages: FakePackageService, scheduler: FakeScheduler
) -> None:
    delivery_id = await request_delivery(client)

    scheduled = await reach_stage(client, delivery_id, "Scheduled")
    status = (await client.get(f"/api/deliveries/{delivery_id}/status")).json()

    package_id = scheduled["packageId"]
    assert packages.packages[package_id] == {
        "size": "Small",
        "weight": 2.5,
        "tag": "books",
        "ownerId": "alice",
    }
    assert scheduler.plans[delivery_id]["packageDetail"] == {
        "id": package_id,
        "size": "Small",
        "weight": 2.5,
    }
    assert scheduled["droneId"] == "drone-1"
    assert scheduled["pickupEta"] == scheduler.assignments[delivery_id]["pickupEta"]
    assert scheduled["dropoffEta"] == scheduler.assignments[delivery_id]["dropoffEta"]
    assert await event_stages(client, delivery_id) == ["Created", "Scheduled"]
    assert status["stage"] == "Scheduled"
    assert status["droneId"] == "drone-1"
    assert status["lastKnownLocation"]["latitude"] == 47.6, "the drone's live position"
    assert (packages.calls["PUT"], scheduler.calls["PUT"]) == (1, 1)
    assert packages.calls["GET"] == 0, "a package id the service generated needs no lookup"


@pytest.mark.parametrize(
    "failure",
    [
        503,  # retried within the call by the service client
        500,  # not retried by the client: the workflow waits and tries again
    ],
)
async def test_a_package_service_that_fails_for_a_while_is_waited_out(
    client: httpx.AsyncClient,
    packages: FakePackageService,
    scheduler: FakeScheduler,
    failure: int,
) -> None:
    packages.answer_next("PUT", failure, times=3)

    delivery_id = await request_delivery(client)

    scheduled = await reach_stage(client, delivery_id, "Scheduled")
    assert packages.calls["PUT"] == 4
    assert scheduled["packageId"] in packages.packages
    assert scheduler.drones_held == 1


async def test_no_drone_free_is_waited_out(
    client: httpx.AsyncClient, packages: FakePackageService, scheduler: FakeScheduler
) -> None:
    scheduler.answer_next("PUT", 503, times=3, retry_after="1")

    delivery_id = await request_delivery(client)

    scheduled = await reach_stage(client, delivery_id, "Scheduled")
    assert scheduler.calls["PUT"] == 4
    assert scheduled["droneId"] == "drone-1"
    assert packages.calls["PUT"] == 1, "the package is registered once, not at every attempt"


async def test_a_plan_no_drone_can_fly_fails_and_leaves_nothing_behind(
    client: httpx.AsyncClient, packages: FakePackageService, scheduler: FakeScheduler
) -> None:
    scheduler.refuse_every_plan = "25 kg is more than any drone carries"

    delivery_id = await request_delivery(client)

    failed = await reach_stage(client, delivery_id, "Failed")
    assert "25 kg is more than any drone carries" in failed["failureReason"]
    assert packages.packages == {}, "the package this delivery registered is deleted"
    assert packages.calls["DELETE"] == 1
    assert scheduler.drones_held == 0
    assert await event_stages(client, delivery_id) == ["Created", "Failed"]


async def test_a_drop_off_after_the_deadline_fails_and_releases_the_drone(
    client: httpx.AsyncClient, packages: FakePackageService, scheduler: FakeScheduler
) -> None:
    deadline = datetime.now(UTC) + timedelta(minutes=10)  # the fake needs 25 minutes

    delivery_id = await request_delivery(client, deadline=deadline.isoformat())

    failed = await reach_stage(client, delivery_id, "Failed")
    assert "after the deadline" in failed["failureReason"]
    assert scheduler.drones_held == 0
    assert scheduler.released[delivery_id] == 1
    assert packages.packages == {}


async def test_a_package_that_existed_before_is_not_deleted_by_a_failure(
    client: httpx.AsyncClient, packages: FakePackageService, scheduler: FakeScheduler
) -> None:
    packages.packages["gift-1"] = {"size": "Small", "weight": 1, "tag": "gift", "ownerId": "bob"}
    scheduler.refuse_every_plan = "out of range"

    delivery_id = await request_delivery(
        client, packageInfo={"packageId": "gift-1", "size": "Small", "weight": 2, "tag": "gift"}
    )

    await reach_stage(client, delivery_id, "Failed")
    assert "gift-1" in packages.packages
    assert packages.calls["GET"] == 1, "a package the client named may exist: it is looked up"
    assert packages.calls["DELETE"] == 0


async def test_scheduling_gives_up_when_its_budget_is_spent(
    settings: DeliverySettings, packages: FakePackageService, scheduler: FakeScheduler
) -> None:
    scheduler.answer_next("PUT", 503, times=1000, retry_after="1")
    impatient = settings.model_copy(update={"scheduling_budget_seconds": 2.0})

    with serve_in_thread(create_app(impatient)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            delivery_id = await request_delivery(client)
            failed = await reach_stage(client, delivery_id, "Failed")

    assert failed["failureReason"] == "Could not be scheduled within 2 s: no drone is free yet."
    assert packages.packages == {}
    assert scheduler.drones_held == 0


async def test_cancelling_while_requested_stops_the_workflow_and_undoes_it(
    client: httpx.AsyncClient, packages: FakePackageService, scheduler: FakeScheduler
) -> None:
    scheduler.answer_next("PUT", 503, times=1000, retry_after="1")  # waiting for a drone
    delivery_id = await request_delivery(client)
    await eventually(lambda: packages.calls["PUT"] == 1 and scheduler.calls["PUT"] >= 1)

    cancelled = await client.delete(f"/api/deliveryrequests/{delivery_id}")
    again = await client.delete(f"/api/deliveryrequests/{delivery_id}")

    assert (cancelled.status_code, again.status_code) == (204, 204)
    assert (await delivery(client, delivery_id))["stage"] == "Cancelled"
    await eventually(lambda: packages.packages == {}, what="the package deleted")
    calls_after_cancel = scheduler.calls["PUT"]
    await eventually(lambda: scheduler.calls["DELETE"] >= 1, what="the drone released")
    assert scheduler.calls["PUT"] == calls_after_cancel, "no more attempts to get a drone"
    assert scheduler.drones_held == 0
    assert await event_stages(client, delivery_id) == ["Created", "Cancelled"]


async def test_a_drone_assigned_while_the_request_is_cancelled_is_released(
    client: httpx.AsyncClient, packages: FakePackageService, scheduler: FakeScheduler
) -> None:
    """The workflow's step races the cancel: its checkpoint loses, and it undoes what it did."""
    cancel_answered = threading.Event()

    async def assign_after_the_cancel(_: str) -> None:
        await asyncio.to_thread(cancel_answered.wait, 10)

    scheduler.on_put = assign_after_the_cancel
    delivery_id = await request_delivery(client)
    await eventually(lambda: scheduler.calls["PUT"] == 1, what="the assignment requested")

    response = await client.delete(f"/api/deliveryrequests/{delivery_id}")
    cancel_answered.set()

    assert response.status_code == 204
    await eventually(lambda: scheduler.released[delivery_id] == 1, what="the drone released")
    await eventually(lambda: packages.packages == {}, what="the package deleted")
    assert scheduler.drones_held == 0
    final = await delivery(client, delivery_id)
    assert final["stage"] == "Cancelled"
    assert "Scheduled" not in await event_stages(client, delivery_id)


async def test_cancelling_a_scheduled_delivery_releases_its_drone(
    client: httpx.AsyncClient, packages: FakePackageService, scheduler: FakeScheduler
) -> None:
    delivery_id = await request_delivery(client)
    await reach_stage(client, delivery_id, "Scheduled")

    cancelled = await client.delete(f"/api/deliveryrequests/{delivery_id}")
    stage_when_answered = (await delivery(client, delivery_id))["stage"]
    again = await client.delete(f"/api/deliveryrequests/{delivery_id}")

    assert (cancelled.status_code, again.status_code) == (204, 204)
    assert stage_when_answered == "Cancelled"
    assert scheduler.released[delivery_id] == 1
    assert scheduler.drones_held == 0
    await eventually(lambda: packages.packages == {}, what="the package deleted")
    assert await event_stages(client, delivery_id) == ["Created", "Scheduled", "Cancelled"]


async def test_a_cancel_the_scheduler_refuses_leaves_the_delivery_as_it_was(
    client: httpx.AsyncClient, packages: FakePackageService, scheduler: FakeScheduler
) -> None:
    delivery_id = await request_delivery(client)
    await reach_stage(client, delivery_id, "Scheduled")
    scheduler.package_aboard.add(delivery_id)  # picked up a moment before the cancel

    response = await client.delete(f"/api/deliveryrequests/{delivery_id}")

    assert response.status_code == 409
    assert "picked the package up" in response.json()["detail"]
    assert (await delivery(client, delivery_id))["stage"] == "Scheduled"
    assert scheduler.drones_held == 1
    assert len(packages.packages) == 1


async def test_rescheduling_a_scheduled_delivery_replans_it(
    client: httpx.AsyncClient, scheduler: FakeScheduler
) -> None:
    delivery_id = await request_delivery(client)
    before = await reach_stage(client, delivery_id, "Scheduled")
    later = datetime.now(UTC) + timedelta(hours=2)

    response = await client.patch(
        f"/api/deliveryrequests/{delivery_id}",
        json={"dropOffLocation": "47.70,-122.25", "pickupTime": later.isoformat()},
    )

    assert response.status_code == 200, response.text
    after = response.json()
    assert after["dropoff"] == {"latitude": 47.70, "longitude": -122.25, "altitude": None}
    assert after["stage"] == "Scheduled"
    assert after["pickupEta"] > before["pickupEta"]
    assert scheduler.plans[delivery_id]["dropoff"]["latitude"] == 47.70
    assert after["pickupEta"] == scheduler.assignments[delivery_id]["pickupEta"]
    events = (await client.get(f"/api/deliveries/{delivery_id}/events")).json()
    assert [e["stage"] for e in events] == ["Created", "Scheduled", "Rescheduled"]
    assert events[-1]["pickupEta"] == after["pickupEta"]
    assert scheduler.drones_held == 1


async def test_a_reschedule_the_scheduler_refuses_keeps_the_old_plan(
    client: httpx.AsyncClient, scheduler: FakeScheduler
) -> None:
    delivery_id = await request_delivery(client)
    before = await reach_stage(client, delivery_id, "Scheduled")
    scheduler.refuse_plans_to = (48.9, -121.0)
    old_plan = scheduler.plans[delivery_id]

    response = await client.patch(
        f"/api/deliveryrequests/{delivery_id}", json={"dropOffLocation": "48.9,-121.0"}
    )

    assert response.status_code == 422
    assert "out of every drone's range" in response.json()["detail"]
    after = await delivery(client, delivery_id)
    assert after["dropoff"] == before["dropoff"]
    assert after["dropoffEta"] == before["dropoffEta"]
    await eventually(lambda: scheduler.plans.get(delivery_id) == old_plan, what="plan restored")
    assert scheduler.drones_held == 1
    assert await event_stages(client, delivery_id) == ["Created", "Scheduled"]


async def test_rescheduling_while_requested_changes_what_is_scheduled(
    client: httpx.AsyncClient, scheduler: FakeScheduler
) -> None:
    scheduler.answer_next("PUT", 503, times=2, retry_after="1")
    delivery_id = await request_delivery(client)

    response = await client.patch(
        f"/api/deliveryrequests/{delivery_id}", json={"pickupLocation": "47.62,-122.35"}
    )

    assert response.status_code == 200
    assert response.json()["pickup"]["latitude"] == 47.62
    await reach_stage(client, delivery_id, "Scheduled")
    assert scheduler.plans[delivery_id]["pickup"]["latitude"] == 47.62
    assert scheduler.drones_held == 1


async def test_a_delivery_is_tracked_to_completion(
    client: httpx.AsyncClient, scheduler: FakeScheduler
) -> None:
    delivery_id = await request_delivery(client, confirmationRequired="picture")
    await reach_stage(client, delivery_id, "Scheduled")
    now = datetime.now(UTC)
    over_pickup = {"latitude": 47.6097, "longitude": -122.3331}
    over_dropoff = {"latitude": 47.6553, "longitude": -122.3035}

    reports = [
        ("events", {"eventId": "e1", "stage": "HeadedToPickup", "location": over_pickup}),
        ("events", {"eventId": "e2", "stage": "HeadedToDropoff", "location": over_pickup}),
        (
            "confirmations",
            {"eventId": "e3", "location": over_dropoff, "confirmationType": "Picture"},
        ),
    ]
    answers = []
    for minutes, (kind, report) in enumerate(reports, start=1):
        body = {
            **report,
            "droneId": "drone-1",
            "time": (now + timedelta(minutes=minutes)).isoformat(),
        }
        answers.append(
            (await client.post(f"/api/deliveries/{delivery_id}/{kind}", json=body)).status_code
        )
    scheduler.live_location = None  # landed: the status falls back to the last report

    assert answers == [204, 204, 204]
    status = (await client.get(f"/api/deliveries/{delivery_id}/status")).json()
    assert status["stage"] == "Completed"
    assert status["lastKnownLocation"] == {**over_dropoff, "altitude": None}
    events = (await client.get(f"/api/deliveries/{delivery_id}/events")).json()
    assert [e["stage"] for e in events] == [
        "Created",
        "Scheduled",
        "HeadedToPickup",
        "HeadedToDropoff",
        "Completed",
    ]
    assert events[-1]["confirmationType"] == "Picture"
    assert [e["eventId"] for e in events[2:]] == ["e1", "e2", "e3"]


async def test_a_cancel_the_scheduler_cannot_decide_in_time_is_202_and_goes_on(
    settings: DeliverySettings, packages: FakePackageService, scheduler: FakeScheduler
) -> None:
    brief = settings.model_copy(update={"change_wait_seconds": 0.5})
    with serve_in_thread(create_app(brief)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            delivery_id = await request_delivery(client)
            await reach_stage(client, delivery_id, "Scheduled")
            scheduler.answer_next("DELETE", 503, times=1000, retry_after="1")

            response = await client.delete(f"/api/deliveryrequests/{delivery_id}")
            scheduler.answer_normally()
            cancelled = await reach_stage(client, delivery_id, "Cancelled")

    assert response.status_code == 202
    assert response.headers["location"] == f"/api/deliveries/{delivery_id}"
    assert response.json()["stage"] == "Scheduled", "not cancelled until the drone is released"
    assert cancelled["droneId"] == "drone-1"
    assert scheduler.drones_held == 0
    await eventually(lambda: packages.packages == {}, what="the package deleted")


async def test_a_reschedule_with_no_drone_free_for_the_new_plan_is_503_and_keeps_the_plan(
    client: httpx.AsyncClient, scheduler: FakeScheduler
) -> None:
    delivery_id = await request_delivery(client)
    before = await reach_stage(client, delivery_id, "Scheduled")
    old_plan = scheduler.plans[delivery_id]
    scheduler.answer_next("PUT", 503, times=1000, retry_after="1")

    response = await client.patch(
        f"/api/deliveryrequests/{delivery_id}", json={"dropOffLocation": "47.7,-122.2"}
    )
    scheduler.answer_normally()

    assert response.status_code == 503
    assert "Retry-After" in response.headers
    after = await delivery(client, delivery_id)
    assert (after["dropoff"], after["dropoffEta"]) == (before["dropoff"], before["dropoffEta"])
    await eventually(lambda: scheduler.plans.get(delivery_id) == old_plan, what="plan kept")
    assert await event_stages(client, delivery_id) == ["Created", "Scheduled"]


async def test_a_burst_is_accepted_at_once_and_scheduled_a_few_at_a_time(
    settings: DeliverySettings, packages: FakePackageService, scheduler: FakeScheduler
) -> None:
    in_flight, most_in_flight = 0, 0

    async def slow_assignment(_: str) -> None:
        nonlocal in_flight, most_in_flight
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        await asyncio.sleep(0.2)
        in_flight -= 1

    scheduler.on_put = slow_assignment
    two_at_a_time = settings.model_copy(update={"max_active_workflows": 2})

    with serve_in_thread(create_app(two_at_a_time)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            delivery_ids = await asyncio.gather(*(request_delivery(client) for _ in range(8)))
            for delivery_id in delivery_ids:
                await reach_stage(client, delivery_id, "Scheduled")

    assert most_in_flight == 2
    assert scheduler.calls["PUT"] == 8
