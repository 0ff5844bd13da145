"""Reading deliveries, the monthly summary, notify-me requests, PUT for the original's clients, and the
scheduler's internal tracking reports."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
from delivery_testkit import (
    FakePackageService,
    FakeScheduler,
    delivery,
    delivery_request,
    event_stages,
    reach_stage,
    request_delivery,
)

from delivery_service.settings import DeliverySettings
from delivery_service.store import CONTAINERS, NOTIFY_ME_REQUESTS, NotifyMeRepository
from servicekit.stores import open_document_store

DELIVERY_FIELDS = {
    "id",
    "owner",
    "pickup",
    "dropoff",
    "pickupTime",
    "deadline",
    "expedited",
    "confirmationRequired",
    "packageId",
    "droneId",
    "stage",
    "pickupEta",
    "dropoffEta",
    "failureReason",
    "createdAt",
    "updatedAt",
}


async def test_a_delivery_reads_as_the_design_says(client: httpx.AsyncClient) -> None:
    delivery_id = await request_delivery(client, ownerId="carol", confirmationRequired="voice")

    body = await reach_stage(client, delivery_id, "Scheduled")

    assert set(body) == DELIVERY_FIELDS
    assert body["id"] == delivery_id
    assert body["owner"] == {"userId": "carol", "accountId": "carol"}
    assert body["confirmationRequired"] == "Voice"
    assert body["pickup"] == {"latitude": 47.6097, "longitude": -122.3331, "altitude": None}
    assert body["failureReason"] is None
    assert body["createdAt"] <= body["updatedAt"]


async def test_the_owner_route_answers_user_and_account(client: httpx.AsyncClient) -> None:
    delivery_id = await request_delivery(client, ownerId="dave.k")

    response = await client.get(f"/api/deliveries/{delivery_id}/owner")

    assert response.status_code == 200
    assert response.json() == {"userId": "dave.k", "accountId": "dave.k"}


async def test_the_summary_counts_an_owners_deliveries_of_a_month(
    client: httpx.AsyncClient,
) -> None:
    for owner in ("alice", "alice", "alice", "bob"):
        await request_delivery(client, ownerId=owner)
    now = datetime.now(UTC)

    async def summary(owner: str, year: int, month: int) -> dict[str, Any]:
        params: dict[str, str | int] = {"ownerId": owner, "year": year, "month": month}
        response = await client.get("/api/deliveries/summary", params=params)
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body

    assert await summary("alice", now.year, now.month) == {
        "ownerId": "alice",
        "year": now.year,
        "month": now.month,
        "count": 3,
    }
    assert (await summary("bob", now.year, now.month))["count"] == 1
    assert (await summary("alice", now.year - 1, now.month))["count"] == 0
    assert (await summary("nobody", now.year, now.month))["count"] == 0


async def test_notify_me_requests_are_stored(
    client: httpx.AsyncClient, settings: DeliverySettings
) -> None:
    delivery_id = await request_delivery(client)

    by_mail = await client.post(
        f"/api/deliveries/{delivery_id}/notifymerequests", json={"emailAddress": "a@example.com"}
    )
    by_both = await client.post(
        f"/api/deliveries/{delivery_id}/notifymerequests",
        json={"emailAddress": "b@example.com", "sms": "+1 (206) 555-0100"},
    )

    assert (by_mail.status_code, by_both.status_code) == (204, 204)
    store = open_document_store(settings.store_url, CONTAINERS, timeout=5)
    await store.start()
    try:
        stored = await NotifyMeRepository(store.container(NOTIFY_ME_REQUESTS)).of(delivery_id)
    finally:
        await store.stop()
    assert sorted((r.email_address, r.sms) for r in stored) == [
        ("a@example.com", None),
        ("b@example.com", "+12065550100"),
    ]


async def test_the_status_falls_back_to_the_last_report_when_the_scheduler_is_slow(
    client: httpx.AsyncClient, scheduler: FakeScheduler
) -> None:
    delivery_id = await request_delivery(client)
    await reach_stage(client, delivery_id, "Scheduled")
    reported = {"latitude": 47.62, "longitude": -122.34, "altitude": 80.0}
    await client.post(
        f"/api/deliveries/{delivery_id}/events",
        json={
            "eventId": "e1",
            "stage": "HeadedToPickup",
            "time": datetime.now(UTC).isoformat(),
            "location": reported,
            "droneId": "drone-1",
        },
    )
    scheduler.answer_next("GET", 503, times=100)

    started = time.monotonic()
    status = (await client.get(f"/api/deliveries/{delivery_id}/status")).json()

    assert time.monotonic() - started < 3
    assert status["stage"] == "HeadedToPickup"
    assert status["lastKnownLocation"] == reported
    assert status["droneId"] == "drone-1"


async def test_a_requested_delivery_has_no_location_yet(
    client: httpx.AsyncClient, scheduler: FakeScheduler
) -> None:
    scheduler.answer_next("PUT", 503, times=1000, retry_after="1")
    delivery_id = await request_delivery(client)

    status = (await client.get(f"/api/deliveries/{delivery_id}/status")).json()

    assert status == {
        "stage": "Requested",
        "droneId": None,
        "lastKnownLocation": None,
        "pickupEta": None,
        "dropoffEta": None,
    }


async def test_put_creates_a_delivery_under_the_given_id_and_schedules_it(
    client: httpx.AsyncClient, scheduler: FakeScheduler
) -> None:
    response = await client.put("/api/deliveries/ri-0001", json=delivery_request())

    assert response.status_code == 201
    assert response.headers["location"] == "/api/deliveries/ri-0001"
    assert response.json()["id"] == "ri-0001"
    assert set(response.json()) == DELIVERY_FIELDS
    await reach_stage(client, "ri-0001", "Scheduled")
    assert "ri-0001" in scheduler.assignments


async def test_put_of_the_same_delivery_again_is_200_and_changes_nothing(
    client: httpx.AsyncClient, packages: FakePackageService, scheduler: FakeScheduler
) -> None:
    sent = delivery_request()
    await client.put("/api/deliveries/ri-0002", json=sent)
    scheduled = await reach_stage(client, "ri-0002", "Scheduled")

    again = await client.put("/api/deliveries/ri-0002", json=sent)

    assert again.status_code == 200
    assert again.json()["packageId"] == scheduled["packageId"]
    assert again.json()["updatedAt"] == scheduled["updatedAt"]
    assert (packages.calls["PUT"], scheduler.calls["PUT"]) == (1, 1)


async def test_put_of_a_finished_delivery_is_200_when_unchanged_and_409_otherwise(
    client: httpx.AsyncClient, scheduler: FakeScheduler
) -> None:
    sent = delivery_request()
    await client.put("/api/deliveries/ri-0005", json=sent)
    await client.delete("/api/deliveryrequests/ri-0005")

    same = await client.put("/api/deliveries/ri-0005", json=sent)
    moved = await client.put(
        "/api/deliveries/ri-0005", json=delivery_request(dropOffLocation="47.7,-122.2")
    )

    assert (same.status_code, moved.status_code) == (200, 409)
    assert same.json()["stage"] == "Cancelled"


async def test_put_with_another_plan_reschedules_the_delivery(
    client: httpx.AsyncClient, scheduler: FakeScheduler
) -> None:
    await client.put("/api/deliveries/ri-0003", json=delivery_request())
    await reach_stage(client, "ri-0003", "Scheduled")

    response = await client.put(
        "/api/deliveries/ri-0003", json=delivery_request(dropOffLocation="47.7,-122.2")
    )

    assert response.status_code == 200
    assert response.json()["dropoff"]["latitude"] == 47.7
    assert scheduler.plans["ri-0003"]["dropoff"]["latitude"] == 47.7
    assert await event_stages(client, "ri-0003") == ["Created", "Scheduled", "Rescheduled"]


async def test_put_cannot_change_what_is_not_the_plan(client: httpx.AsyncClient) -> None:
    await client.put("/api/deliveries/ri-0004", json=delivery_request())

    response = await client.put("/api/deliveries/ri-0004", json=delivery_request(ownerId="eve"))

    assert response.status_code == 409
    assert "ownerId" in response.json()["detail"]
    assert (await delivery(client, "ri-0004"))["owner"]["userId"] == "alice"


def report(event_id: str, stage: str = "HeadedToPickup") -> dict[str, Any]:
    return {
        "eventId": event_id,
        "stage": stage,
        "time": datetime.now(UTC).isoformat(),
        "location": {"latitude": 47.61, "longitude": -122.33},
        "droneId": "drone-1",
    }


async def test_a_repeated_report_takes_effect_once(client: httpx.AsyncClient) -> None:
    delivery_id = await request_delivery(client)
    await reach_stage(client, delivery_id, "Scheduled")

    answers = [
        (await client.post(f"/api/deliveries/{delivery_id}/events", json=report("e1"))).status_code
        for _ in range(3)
    ]

    assert answers == [204, 204, 204]
    assert await event_stages(client, delivery_id) == ["Created", "Scheduled", "HeadedToPickup"]
    assert (await delivery(client, delivery_id))["stage"] == "HeadedToPickup"


async def test_a_late_report_does_not_move_the_stage_back(client: httpx.AsyncClient) -> None:
    delivery_id = await request_delivery(client)
    await reach_stage(client, delivery_id, "Scheduled")

    await client.post(f"/api/deliveries/{delivery_id}/events", json=report("e2", "HeadedToDropoff"))
    late = await client.post(f"/api/deliveries/{delivery_id}/events", json=report("e1"))

    assert late.status_code == 204
    assert (await delivery(client, delivery_id))["stage"] == "HeadedToDropoff"


async def test_reports_about_a_cancelled_delivery_are_409(client: httpx.AsyncClient) -> None:
    delivery_id = await request_delivery(client)
    await reach_stage(client, delivery_id, "Scheduled")
    await client.post(f"/api/deliveries/{delivery_id}/events", json=report("e1"))
    await client.delete(f"/api/deliveryrequests/{delivery_id}")
    confirmation = {k: v for k, v in report("e3").items() if k != "stage"}

    repeated = await client.post(f"/api/deliveries/{delivery_id}/events", json=report("e1"))
    new = await client.post(f"/api/deliveries/{delivery_id}/events", json=report("e2"))
    confirmed = await client.post(f"/api/deliveries/{delivery_id}/confirmations", json=confirmation)

    assert (repeated.status_code, new.status_code, confirmed.status_code) == (204, 409, 409)
    assert new.headers["content-type"] == "application/problem+json"
    assert (await delivery(client, delivery_id))["stage"] == "Cancelled"


async def test_reports_before_a_drone_was_asked_for_are_409(
    client: httpx.AsyncClient, packages: FakePackageService
) -> None:
    packages.answer_next("PUT", 500, times=1000)  # never gets past registering the package
    delivery_id = await request_delivery(client)

    response = await client.post(f"/api/deliveries/{delivery_id}/events", json=report("e1"))

    assert response.status_code == 409
    assert (await delivery(client, delivery_id))["stage"] == "Requested"


async def test_summary_is_not_a_delivery_id(client: httpx.AsyncClient) -> None:
    # A delivery called "summary" could be created, but GET /api/deliveries/summary is the summary.
    response = await client.put("/api/deliveries/summary", json=delivery_request())

    assert (response.status_code, response.headers["allow"]) == (405, "GET")
