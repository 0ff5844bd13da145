"""The public delivery-request API: accepting, validating, idempotency keys, cancel and reschedule."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from delivery_testkit import (
    FakePackageService,
    FakeScheduler,
    delivery,
    delivery_request,
    reach_stage,
    request_delivery,
)

PROBLEM_JSON = "application/problem+json"


async def count_of(client: httpx.AsyncClient, owner: str = "alice") -> int:
    now = datetime.now(UTC)
    response = await client.get(
        "/api/deliveries/summary", params={"ownerId": owner, "year": now.year, "month": now.month}
    )
    count: int = response.json()["count"]
    return count


async def test_a_request_is_accepted_stored_and_answered_with_its_ids(
    client: httpx.AsyncClient,
) -> None:
    sent = delivery_request(deliveryId="chosen-by-the-client", expedited=True)

    response = await client.post("/api/deliveryrequests", json=sent)
    body = response.json()
    stored = await client.get(response.headers["location"])

    assert response.status_code == 202
    assert body["status"] == "Accepted"
    assert body["deliveryId"] != "chosen-by-the-client", "a deliveryId in the body is ignored"
    assert response.headers["location"] == f"/api/deliveries/{body['deliveryId']}"
    assert body["ownerId"] == "alice"
    assert body["expedited"] is True
    assert body["confirmationRequired"] == "None"
    assert body["packageInfo"]["packageId"], "a package id is generated"
    assert abs(datetime.fromisoformat(body["pickupTime"]) - datetime.now(UTC)) < timedelta(
        minutes=1
    ), "the pickup time defaults to now"
    assert stored.status_code == 200, "the delivery is stored before the answer"
    assert stored.json()["packageId"] == body["packageInfo"]["packageId"]


async def test_the_original_coordinate_strings_and_any_enum_case_are_accepted(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/deliveryrequests",
        json=delivery_request(
            pickupLocation="47.6097, -122.3331",
            dropOffLocation="47.6553,-122.3035,120",
            confirmationRequired="fingerprint",
            packageInfo={"packageId": "pkg-7", "size": "LARGE", "weight": 25, "tag": "tv"},
        ),
    )

    body = response.json()
    assert response.status_code == 202
    assert body["pickupLocation"] == {"latitude": 47.6097, "longitude": -122.3331, "altitude": None}
    assert body["dropOffLocation"] == {"latitude": 47.6553, "longitude": -122.3035, "altitude": 120}
    assert body["confirmationRequired"] == "FingerPrint"
    assert body["packageInfo"] == {"packageId": "pkg-7", "size": "Large", "weight": 25, "tag": "tv"}


def _in(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


async def test_a_retried_post_with_its_idempotency_key_gets_the_first_answer(
    client: httpx.AsyncClient, packages: FakePackageService
) -> None:
    headers = {"Idempotency-Key": "order-4711"}
    sent = delivery_request()

    first = await client.post("/api/deliveryrequests", json=sent, headers=headers)
    again = await client.post("/api/deliveryrequests", json=sent, headers=headers)
    other_key = await client.post(
        "/api/deliveryrequests", json=sent, headers={"Idempotency-Key": "order-4712"}
    )

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert other_key.json()["deliveryId"] != first.json()["deliveryId"]
    assert await count_of(client) == 2


async def test_an_idempotency_key_reused_for_another_request_is_422(
    client: httpx.AsyncClient,
) -> None:
    headers = {"Idempotency-Key": "order-4711"}
    await client.post("/api/deliveryrequests", json=delivery_request(), headers=headers)

    response = await client.post(
        "/api/deliveryrequests", json=delivery_request(expedited=True), headers=headers
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert "Idempotency-Key" in response.json()["detail"]
    assert await count_of(client) == 1


async def test_concurrent_retries_with_one_key_make_one_delivery(
    client: httpx.AsyncClient, packages: FakePackageService, scheduler: FakeScheduler
) -> None:
    headers = {"Idempotency-Key": "burst-1"}
    sent = delivery_request()

    responses = await asyncio.gather(
        *(client.post("/api/deliveryrequests", json=sent, headers=headers) for _ in range(12))
    )

    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["deliveryId"] for r in responses}) == 1
    assert await count_of(client) == 1
    await reach_stage(client, responses[0].json()["deliveryId"], "Scheduled")
    assert len(packages.packages) == 1
    assert scheduler.drones_held == 1


async def test_a_pickup_time_moved_past_the_deadline_is_422(client: httpx.AsyncClient) -> None:
    delivery_id = await request_delivery(client, deadline=_in(2))

    response = await client.patch(
        f"/api/deliveryrequests/{delivery_id}", json={"pickupTime": _in(3)}
    )

    assert response.status_code == 422
    assert "pickupTime" in {error["field"] for error in response.json()["errors"]}


async def test_a_deadline_can_be_removed(client: httpx.AsyncClient) -> None:
    delivery_id = await request_delivery(client, deadline=_in(5))
    await reach_stage(client, delivery_id, "Scheduled")

    response = await client.patch(f"/api/deliveryrequests/{delivery_id}", json={"deadline": None})

    assert response.status_code == 200
    assert response.json()["deadline"] is None


async def test_a_reschedule_that_changes_nothing_is_200(
    client: httpx.AsyncClient, scheduler: FakeScheduler
) -> None:
    delivery_id = await request_delivery(client)
    scheduled = await reach_stage(client, delivery_id, "Scheduled")

    response = await client.patch(
        f"/api/deliveryrequests/{delivery_id}", json={"pickupLocation": scheduled["pickup"]}
    )

    assert response.status_code == 200
    assert response.json()["dropoffEta"] == scheduled["dropoffEta"]
    assert scheduler.calls["PUT"] == 1


async def report(client: httpx.AsyncClient, delivery_id: str, stage: str, event_id: str) -> int:
    body = {
        "eventId": event_id,
        "stage": stage,
        "time": datetime.now(UTC).isoformat(),
        "location": {"latitude": 47.61, "longitude": -122.33},
        "droneId": "drone-1",
    }
    response = await client.post(f"/api/deliveries/{delivery_id}/events", json=body)
    return response.status_code


async def test_after_pickup_a_delivery_can_be_neither_cancelled_nor_rescheduled(
    client: httpx.AsyncClient, scheduler: FakeScheduler
) -> None:
    delivery_id = await request_delivery(client)
    await reach_stage(client, delivery_id, "Scheduled")
    assert await report(client, delivery_id, "HeadedToDropoff", "e1") == 204

    cancel = await client.delete(f"/api/deliveryrequests/{delivery_id}")
    reschedule = await client.patch(
        f"/api/deliveryrequests/{delivery_id}", json={"dropOffLocation": "47.7,-122.2"}
    )

    assert (cancel.status_code, reschedule.status_code) == (409, 409)
    assert cancel.headers["content-type"] == PROBLEM_JSON
    assert "picked the package up" in cancel.json()["detail"]
    assert (await delivery(client, delivery_id))["stage"] == "HeadedToDropoff"
    assert scheduler.drones_held == 1


async def test_finished_deliveries_can_be_neither_cancelled_nor_rescheduled(
    client: httpx.AsyncClient, scheduler: FakeScheduler
) -> None:
    scheduler.refuse_every_plan = "out of range"
    failed = await request_delivery(client)
    await reach_stage(client, failed, "Failed")
    scheduler.refuse_every_plan = None
    cancelled = await request_delivery(client)
    await client.delete(f"/api/deliveryrequests/{cancelled}")

    answers = [
        (await client.delete(f"/api/deliveryrequests/{failed}")).status_code,
        (
            await client.patch(f"/api/deliveryrequests/{failed}", json={"deadline": None})
        ).status_code,
        (await client.delete(f"/api/deliveryrequests/{cancelled}")).status_code,
        (
            await client.patch(f"/api/deliveryrequests/{cancelled}", json={"deadline": None})
        ).status_code,
    ]

    assert answers == [409, 409, 204, 409]
