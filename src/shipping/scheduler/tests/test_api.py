"""Every route of the scheduler over HTTP, with good and bad input."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from scheduler_harness import (
    NORTHGATE,
    SODO,
    delivery,
    drone,
    eventually,
    location,
    scheduler_client,
    wait_for_drone,
    wait_for_the_fleet_at_home,
)

from scheduler_service.geo import KM_PER_MILE

PROBLEM_JSON = "application/problem+json"


def at(response: httpx.Response, field: str) -> datetime:
    return datetime.fromisoformat(response.json()[field])


async def drones_of(client: httpx.AsyncClient, delivery_id: str) -> list[str]:
    fleet = (await client.get("/api/drones")).json()
    return [d["id"] for d in fleet if d["deliveryId"] == delivery_id]


# The fleet


async def test_the_fleet_is_listed_on_the_ground_and_free(scheduler: httpx.AsyncClient) -> None:
    response = await scheduler.get("/api/drones")

    assert response.status_code == 200
    fleet = response.json()
    assert [d["id"] for d in fleet] == [f"drone-{n:03d}" for n in range(1, 21)]
    assert set(fleet[0]) == {
        "id",
        "model",
        "maxPayloadKg",
        "maxSize",
        "speedKmh",
        "rangeKm",
        "base",
        "location",
        "status",
        "deliveryId",
    }
    assert all(d["status"] == "Available" and d["deliveryId"] is None for d in fleet)
    assert all(d["location"] == d["base"] for d in fleet)
    assert (fleet[0]["maxPayloadKg"], fleet[0]["maxSize"]) == (25, "Large")


async def test_one_drone_by_its_id(shared_scheduler: httpx.AsyncClient) -> None:
    found = await shared_scheduler.get("/api/drones/drone-002")
    missing = await shared_scheduler.get("/api/drones/drone-999")
    invalid = await shared_scheduler.get("/api/drones/not%20an%20id")

    assert found.json()["base"] == {
        "latitude": NORTHGATE[0],
        "longitude": NORTHGATE[1],
        "altitude": None,
    }
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM_JSON
    assert invalid.status_code == 422


# Assigning


async def test_a_delivery_gets_the_nearest_drone_that_can_carry_it(
    scheduler: httpx.AsyncClient,
) -> None:
    before = datetime.now(UTC)

    response = await scheduler.put("/api/dronedeliveries/d1", json=delivery("d1", near=NORTHGATE))

    assert response.status_code == 201
    assert response.headers["location"] == "/api/dronedeliveries/d1"
    body = response.json()
    assert body["deliveryId"] == "d1"
    assert body["droneId"] == "drone-002", "its base is 1 km from the pickup"
    assert body["distanceKm"] == pytest.approx(1 + 2 + 3, rel=0.01)
    speed = (await drone(scheduler, "drone-002"))["speedKmh"]
    to_pickup = timedelta(hours=1 / speed)
    assert before + to_pickup <= at(response, "pickupEta") <= datetime.now(UTC) + to_pickup
    assert (at(response, "dropoffEta") - at(response, "pickupEta")).total_seconds() == (
        pytest.approx(2 / speed * 3600, rel=0.01)
    )
    flying = await drone(scheduler, "drone-002")
    assert (flying["status"], flying["deliveryId"]) == ("HeadedToPickup", "d1")


async def test_a_heavy_large_package_goes_to_a_drone_that_lifts_it(
    scheduler: httpx.AsyncClient,
) -> None:
    body = delivery("heavy", near=SODO, size="large", weight=25)

    response = await scheduler.put("/api/dronedeliveries/heavy", json=body)

    assert response.status_code == 201
    assert response.json()["droneId"] == "drone-001"


async def test_repeating_a_request_answers_the_same_assignment(
    scheduler: httpx.AsyncClient,
) -> None:
    body = delivery("d1")
    first = await scheduler.put("/api/dronedeliveries/d1", json=body)

    again = await scheduler.put("/api/dronedeliveries/d1", json=body)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert await drones_of(scheduler, "d1") == [first.json()["droneId"]]


async def test_concurrent_repeats_agree_on_one_drone(scheduler: httpx.AsyncClient) -> None:
    body = delivery("d1")

    responses = await asyncio.gather(
        *(scheduler.put("/api/dronedeliveries/d1", json=body) for _ in range(8))
    )

    assert sorted(r.status_code for r in responses) == [200] * 7 + [201]
    assert len({r.json()["droneId"] for r in responses}) == 1
    assert await drones_of(scheduler, "d1") == [responses[0].json()["droneId"]]


async def test_a_future_pickup_time_reserves_the_drone_until_it_must_leave(
    scheduler: httpx.AsyncClient,
) -> None:
    pickup_time = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    body = delivery("later", pickupTime=pickup_time.isoformat())

    response = await scheduler.put("/api/dronedeliveries/later", json=body)
    status = await scheduler.get("/api/dronedeliveries/later")

    assert response.status_code == 201
    assert at(response, "pickupEta") == pickup_time
    reserved = await drone(scheduler, response.json()["droneId"])
    assert (reserved["status"], reserved["deliveryId"]) == ("Reserved", "later")
    assert reserved["location"] == reserved["base"]
    assert status.json()["status"] == "Scheduled"
    assert status.json()["progress"] == 0


async def test_a_changed_request_is_planned_again(scheduler: httpx.AsyncClient) -> None:
    pickup_time = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    first = await scheduler.put(
        "/api/dronedeliveries/d1", json=delivery("d1", pickupTime=pickup_time)
    )

    changed = await scheduler.put(
        "/api/dronedeliveries/d1",
        json=delivery("d1", near=NORTHGATE, pickupTime=pickup_time),
    )

    assert (first.status_code, changed.status_code) == (201, 200)
    assert first.json()["droneId"] == "drone-001"
    assert changed.json()["droneId"] == "drone-002", "the nearest drone to the new pickup"
    assert await drones_of(scheduler, "d1") == ["drone-002"]
    assert (await drone(scheduler, "drone-001"))["status"] == "Available"


async def test_503_with_retry_after_when_no_capable_drone_is_free(tmp_path: Path) -> None:
    async with scheduler_client(tmp_path, fleet_size=1) as scheduler:
        taken = await scheduler.put("/api/dronedeliveries/d1", json=delivery("d1"))

        refused = await scheduler.put("/api/dronedeliveries/d2", json=delivery("d2"))

    assert taken.status_code == 201
    assert refused.status_code == 503
    assert refused.headers["content-type"] == PROBLEM_JSON
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert "busy" in refused.json()["detail"]


async def test_non_expedited_deliveries_leave_the_reserve_to_expedited_ones(
    tmp_path: Path,
) -> None:
    async with scheduler_client(tmp_path, fleet_size=2, expedited_reserve=0.5) as scheduler:
        first = await scheduler.put("/api/dronedeliveries/d1", json=delivery("d1"))
        ordinary = await scheduler.put(
            "/api/dronedeliveries/d2", json=delivery("d2", near=NORTHGATE)
        )
        expedited = await scheduler.put(
            "/api/dronedeliveries/d3", json=delivery("d3", near=NORTHGATE, expedited=True)
        )

    assert first.status_code == 201
    assert ordinary.status_code == 503
    assert "expedited" in ordinary.json()["detail"]
    assert expedited.status_code == 201
    assert expedited.json()["droneId"] == "drone-002"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"packageDetail": {"id": "p", "size": "Small", "weight": 30}}, "largest payload is 25 kg"),
        (
            {"dropoff": {"latitude": 45.5152, "longitude": -122.6784}},
            "out of range of every drone",
        ),
    ],
)
async def test_what_no_drone_could_ever_fly_is_422_saying_why(
    shared_scheduler: httpx.AsyncClient, changes: dict[str, Any], reason: str
) -> None:
    response = await shared_scheduler.put(
        "/api/dronedeliveries/never", json=delivery("never") | changes
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert reason in response.json()["detail"]
    assert await drones_of(shared_scheduler, "never") == []


async def test_an_undeliverable_change_keeps_the_plan_there_is(
    scheduler: httpx.AsyncClient,
) -> None:
    pickup_time = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    body = delivery("d1", pickupTime=pickup_time)
    first = await scheduler.put("/api/dronedeliveries/d1", json=body)

    too_heavy = await scheduler.put(
        "/api/dronedeliveries/d1",
        json=body | {"packageDetail": {"id": "p", "size": "Small", "weight": 99}},
    )

    assert too_heavy.status_code == 422
    assert (await scheduler.get("/api/dronedeliveries/d1")).json()["droneId"] == first.json()[
        "droneId"
    ]


async def test_a_body_for_another_delivery_is_refused(shared_scheduler: httpx.AsyncClient) -> None:
    response = await shared_scheduler.put("/api/dronedeliveries/d1", json=delivery("d2"))

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["deliveryId"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"pickup": {"latitude": 91, "longitude": 0}}, "pickup.latitude"),
        ({"dropoff": {"latitude": 47, "longitude": -180.5}}, "dropoff.longitude"),
        ({"pickup": {"latitude": "north", "longitude": 0}}, "pickup.latitude"),
        ({"pickup": "47.6,-122.3"}, "pickup"),
        ({"pickup": {"latitude": 47.6, "longitude": -122.3, "altitude": 1e9}}, "pickup.altitude"),
        ({"packageDetail": {"id": "p", "size": "Small", "weight": -1}}, "packageDetail.weight"),
        ({"packageDetail": {"id": "p", "size": "Small", "weight": 0}}, "packageDetail.weight"),
        ({"packageDetail": {"id": "p", "size": "Small", "weight": 1e12}}, "packageDetail.weight"),
        ({"packageDetail": {"id": "p", "size": "Huge", "weight": 1}}, "packageDetail.size"),
        ({"packageDetail": {"id": "p p", "size": "Small", "weight": 1}}, "packageDetail.id"),
        ({"packageDetail": None}, "packageDetail"),
        ({"ownerId": "not an id"}, "ownerId"),
        ({"pickupTime": "2026-11-26T14:30:00"}, "pickupTime"),
        ({"pickupTime": "tomorrow"}, "pickupTime"),
        ({"pickupTime": "2099-01-01T00:00:00Z"}, "pickupTime"),
        ({"expedited": "very"}, "expedited"),
        ({"confirmationRequired": "Handshake"}, "confirmationRequired"),
    ],
)
async def test_bad_requests_are_422_naming_the_field(
    shared_scheduler: httpx.AsyncClient, changes: dict[str, Any], field: str
) -> None:
    response = await shared_scheduler.put(
        "/api/dronedeliveries/bad", json=delivery("bad") | changes
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert field in {error["field"] for error in response.json()["errors"]}
    assert (await shared_scheduler.get("/api/dronedeliveries/bad")).status_code == 404


@pytest.mark.parametrize(
    "raw",
    [b'{"deliveryId": "d1", ', b"\xc3\x28", b"[1, 2]", b'{"deliveryId": "d1", "ownerId": 1e999}'],
)
async def test_malformed_bodies_are_4xx_problems(
    shared_scheduler: httpx.AsyncClient, raw: bytes
) -> None:
    response = await shared_scheduler.put(
        "/api/dronedeliveries/d1", content=raw, headers={"content-type": "application/json"}
    )

    assert 400 <= response.status_code < 500
    assert response.headers["content-type"] == PROBLEM_JSON


async def test_a_delivery_id_that_is_not_an_identifier_is_refused(
    shared_scheduler: httpx.AsyncClient,
) -> None:
    long_id = "x" * 65

    response = await shared_scheduler.put(f"/api/dronedeliveries/{long_id}", json=delivery(long_id))

    assert response.status_code == 422


# Looking and releasing


async def test_an_unknown_assignment_is_404(shared_scheduler: httpx.AsyncClient) -> None:
    response = await shared_scheduler.get("/api/dronedeliveries/nobody")

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON


async def test_releasing_frees_the_drone_and_can_be_repeated(
    scheduler: httpx.AsyncClient,
) -> None:
    pickup_time = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assigned = await scheduler.put(
        "/api/dronedeliveries/d1", json=delivery("d1", pickupTime=pickup_time)
    )

    first = await scheduler.delete("/api/dronedeliveries/d1")
    again = await scheduler.delete("/api/dronedeliveries/d1")
    never = await scheduler.delete("/api/dronedeliveries/never-assigned")

    assert (first.status_code, again.status_code, never.status_code) == (204, 204, 204)
    released = await drone(scheduler, assigned.json()["droneId"])
    assert (released["status"], released["deliveryId"]) == ("Available", None)
    assert (await scheduler.get("/api/dronedeliveries/d1")).status_code == 404


async def test_a_drone_released_in_the_air_flies_home_and_is_free_when_it_lands(
    scheduler: httpx.AsyncClient,
) -> None:
    assigned = await scheduler.put("/api/dronedeliveries/d1", json=delivery("d1", pickup_km=3))
    drone_id = assigned.json()["droneId"]
    await asyncio.sleep(1.5)  # some 30 m towards the pickup, in real time: as long to fly back

    released = await scheduler.delete("/api/dronedeliveries/d1")
    returning = await drone(scheduler, drone_id)

    assert released.status_code == 204
    assert (returning["status"], returning["deliveryId"]) == ("Returning", None)
    assert returning["location"] != returning["base"]
    home = await wait_for_drone(scheduler, drone_id, "Available")
    assert home["location"] == home["base"]


async def test_once_the_package_is_aboard_it_can_no_longer_change(tmp_path: Path) -> None:
    body = delivery("d1", pickup_km=0.5, dropoff_km=6)
    async with scheduler_client(tmp_path, sim_speedup=600) as scheduler:
        await scheduler.put("/api/dronedeliveries/d1", json=body)

        async def aboard() -> bool:
            status: str = (await scheduler.get("/api/dronedeliveries/d1")).json()["status"]
            return status in ("HeadedToDropoff", "Completed")

        await eventually(aboard)

        cancel = await scheduler.delete("/api/dronedeliveries/d1")
        change = await scheduler.put("/api/dronedeliveries/d1", json=body | {"expedited": True})
        repeat = await scheduler.put("/api/dronedeliveries/d1", json=body)

    assert cancel.status_code == 409
    assert cancel.headers["content-type"] == PROBLEM_JSON
    assert change.status_code == 409
    assert repeat.status_code == 200


async def test_the_assignment_shows_the_drone_moving_to_completion(tmp_path: Path) -> None:
    async with scheduler_client(tmp_path, sim_speedup=400) as scheduler:
        assigned = await scheduler.put(  # about 0.4 s to the pickup, 0.7 s on, 1.1 s home
            "/api/dronedeliveries/d1", json=delivery("d1", pickup_km=2, dropoff_km=5)
        )
        seen: list[dict[str, Any]] = []

        async def completed_and_home() -> bool:
            status: dict[str, Any] = (await scheduler.get("/api/dronedeliveries/d1")).json()
            seen.append(status)
            return bool(status["status"] == "Completed" and status["progress"] == 1)

        await eventually(completed_and_home, every=0.02)

    stages = list(dict.fromkeys(status["status"] for status in seen))
    assert stages == ["HeadedToPickup", "HeadedToDropoff", "Completed"]
    progress = [status["progress"] for status in seen]
    assert progress == sorted(progress)
    assert len({status["location"]["latitude"] for status in seen}) > 3, "it moves"
    assert seen[-1]["location"] == location(SODO) | {"altitude": None}
    assert {status["droneId"] for status in seen} == {assigned.json()["droneId"]}
    assert seen[-1]["ownerId"] == "fabrikam"


# Utilization


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"year": 2026, "month": 1},
        {"ownerId": "o1", "month": 1},
        {"ownerId": "o1", "year": 2026},
        {"ownerId": "o1", "year": 2026, "month": 13},
        {"ownerId": "o1", "year": 2026, "month": 0},
        {"ownerId": "o1", "year": "twenty", "month": 1},
        {"ownerId": "o1", "year": 2026.5, "month": 1},
        {"ownerId": "not an id", "year": 2026, "month": 1},
    ],
)
async def test_utilization_refuses_missing_or_invalid_parameters_with_400(
    shared_scheduler: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    response = await shared_scheduler.get("/api/dronedeliveries/utilization", params=params)

    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM_JSON


async def test_utilization_documents_its_required_parameters_and_its_400(
    shared_scheduler: httpx.AsyncClient,
) -> None:
    document = (await shared_scheduler.get("/openapi.json")).json()

    operation = document["paths"]["/api/dronedeliveries/utilization"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert set(parameters) == {"ownerId", "year", "month"}
    assert all(p["in"] == "query" and p["required"] for p in parameters.values())
    assert parameters["month"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 12}
    assert "400" in operation["responses"]
    assert "422" not in operation["responses"], "invalid parameters are a 400 here"


async def test_utilization_is_zero_when_nothing_was_flown(
    shared_scheduler: httpx.AsyncClient,
) -> None:
    response = await shared_scheduler.get(
        "/api/dronedeliveries/utilization", params={"ownerId": "o1", "year": 2026, "month": 1}
    )

    assert response.status_code == 200
    assert response.json() == {"traveledMiles": 0, "assignedHours": 0}


async def test_utilization_sums_the_owners_completed_flights_of_the_month(
    tmp_path: Path,
) -> None:
    async with scheduler_client(tmp_path, sim_speedup=1500) as scheduler:
        flown = [
            await scheduler.put(f"/api/dronedeliveries/{d}", json=delivery(d, near=near))
            for d, near in (("d1", SODO), ("d2", NORTHGATE))
        ]
        other_owner = await scheduler.put(
            "/api/dronedeliveries/d3",
            json=delivery("d3", near=SODO, pickup_km=-1) | {"ownerId": "x"},
        )
        assert [r.status_code for r in (*flown, other_owner)] == [201, 201, 201]
        now = datetime.now(UTC)

        await wait_for_the_fleet_at_home(scheduler)
        response = await scheduler.get(
            "/api/dronedeliveries/utilization",
            params={"ownerId": "fabrikam", "year": now.year, "month": now.month},
        )
        totals = response.json()
        speeds = {d: (await drone(scheduler, d))["speedKmh"] for d in ("drone-001", "drone-002")}

    kms = [r.json()["distanceKm"] for r in flown]
    assert totals["traveledMiles"] == pytest.approx(sum(kms) / KM_PER_MILE, rel=1e-3)
    hours = (
        kms[0] / speeds[flown[0].json()["droneId"]] + kms[1] / speeds[flown[1].json()["droneId"]]
    )
    assert totals["assignedHours"] == pytest.approx(hours, rel=1e-3)


async def test_utilization_is_not_a_delivery_id(shared_scheduler: httpx.AsyncClient) -> None:
    # An assignment for "utilization" could be made, but never read: that GET is the utilization.
    response = await shared_scheduler.put(
        "/api/dronedeliveries/utilization", json=delivery("utilization")
    )

    assert (response.status_code, response.headers["allow"]) == (405, "GET")
