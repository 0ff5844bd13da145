"""Deliveries through the real gateway and services, from request to a final stage."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from e2e_support import COMPLETED_EVENTS, TERMINAL, delivery_request, wait_for_stage

PROBLEM_JSON = "application/problem+json"


def kilometres(a: dict[str, float], b: dict[str, float]) -> float:
    lat1, lon1, lat2, lon2 = map(
        math.radians, (a["latitude"], a["longitude"], b["latitude"], b["longitude"])
    )
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371 * math.asin(math.sqrt(h))


def test_a_delivery_flies_to_completed_with_real_status_and_events(gateway: httpx.Client) -> None:
    request = delivery_request(ownerId="lifecycle-owner", confirmationRequired="Picture")

    accepted = gateway.post("/api/deliveryrequests", json=request)

    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    delivery_id = body["deliveryId"]
    assert body["status"] == "Accepted"
    assert accepted.headers["location"] == f"/api/deliveries/{delivery_id}"

    scheduled = wait_for_stage(
        gateway, delivery_id, {"Scheduled", "HeadedToPickup", "HeadedToDropoff", "Completed"}
    )
    assert scheduled["droneId"]
    status = gateway.get(f"/api/deliveries/{delivery_id}/status").json()
    assert status["droneId"] == scheduled["droneId"]
    assert status["dropoffEta"] is not None

    completed = wait_for_stage(gateway, delivery_id, TERMINAL)
    assert completed["stage"] == "Completed", completed
    final = gateway.get(f"/api/deliveries/{delivery_id}/status").json()
    assert final["stage"] == "Completed"
    assert kilometres(final["lastKnownLocation"], request["dropOffLocation"]) < 0.1

    events = gateway.get(f"/api/deliveries/{delivery_id}/events").json()
    assert [event["stage"] for event in events] == COMPLETED_EVENTS
    times = [event["time"] for event in events]
    assert times == sorted(times)

    owner = gateway.get(f"/api/deliveries/{delivery_id}/owner").json()
    assert owner["userId"] == "lifecycle-owner"
    now = datetime.now(UTC)
    summary = gateway.get(
        "/api/deliveries/summary",
        params={"ownerId": "lifecycle-owner", "year": now.year, "month": now.month},
    ).json()
    assert summary["count"] == 1


def test_a_cancelled_delivery_releases_its_drone(
    gateway: httpx.Client, internal: Callable[[str], httpx.Client]
) -> None:
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    accepted = gateway.post("/api/deliveryrequests", json=delivery_request(pickupTime=later)).json()
    delivery_id = accepted["deliveryId"]
    scheduled = wait_for_stage(gateway, delivery_id, {"Scheduled"})

    cancelled = gateway.delete(f"/api/deliveryrequests/{delivery_id}")
    again = gateway.delete(f"/api/deliveryrequests/{delivery_id}")

    assert (cancelled.status_code, again.status_code) == (204, 204)
    assert gateway.get(f"/api/deliveries/{delivery_id}").json()["stage"] == "Cancelled"
    drone = internal("scheduler").get(f"/api/drones/{scheduled['droneId']}").json()
    assert drone["deliveryId"] != delivery_id
    assert internal("scheduler").get(f"/api/dronedeliveries/{delivery_id}").status_code == 404
    assert internal("package").get(f"/api/packages/{scheduled['packageId']}").status_code == 404
    events = [
        event["stage"] for event in gateway.get(f"/api/deliveries/{delivery_id}/events").json()
    ]
    assert events[-1] == "Cancelled"


def test_a_rescheduled_delivery_is_planned_again(gateway: httpx.Client) -> None:
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    accepted = gateway.post("/api/deliveryrequests", json=delivery_request(pickupTime=later)).json()
    delivery_id = accepted["deliveryId"]
    before = wait_for_stage(gateway, delivery_id, {"Scheduled"})
    new_dropoff = {"latitude": 47.6553, "longitude": -122.3035}  # the University of Washington

    response = gateway.patch(
        f"/api/deliveryrequests/{delivery_id}", json={"dropOffLocation": new_dropoff}
    )

    assert response.status_code == 200, response.text
    after = response.json()
    assert after["dropoff"]["latitude"] == new_dropoff["latitude"]
    assert after["dropoffEta"] != before["dropoffEta"]
    events = [
        event["stage"] for event in gateway.get(f"/api/deliveries/{delivery_id}/events").json()
    ]
    assert events[-1] == "Rescheduled"
    assert gateway.delete(f"/api/deliveryrequests/{delivery_id}").status_code == 204


def test_a_delivery_no_drone_can_fly_fails_and_holds_nothing(
    gateway: httpx.Client, internal: Callable[[str], httpx.Client]
) -> None:
    tacoma = {"latitude": 47.2529, "longitude": -122.4443}  # about 40 km away: beyond every drone
    accepted = gateway.post("/api/deliveryrequests", json=delivery_request(dropOffLocation=tacoma))
    assert accepted.status_code == 202
    delivery_id = accepted.json()["deliveryId"]

    failed = wait_for_stage(gateway, delivery_id, TERMINAL)

    assert failed["stage"] == "Failed"
    assert failed["failureReason"]
    assert internal("package").get(f"/api/packages/{failed['packageId']}").status_code == 404
    assert internal("scheduler").get(f"/api/dronedeliveries/{delivery_id}").status_code == 404
    drones = internal("scheduler").get("/api/drones").json()
    assert all(drone["deliveryId"] != delivery_id for drone in drones)


def test_clients_of_the_original_implementation_are_understood(gateway: httpx.Client) -> None:
    original = {
        "deliveryId": "ignored-by-the-service",
        "ownerId": "ri-client",
        "pickupLocation": "47.6205,-122.3493",
        "dropOffLocation": "47.6097,-122.3331,40",
        "expedited": True,
        "confirmationRequired": "fingerprint",
        "packageInfo": {
            "packageId": "ri-package-1",
            "size": "medium",
            "weight": 3,
            "tag": "old client",
        },
    }

    accepted = gateway.post("/api/deliveryrequests", json=original)

    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert body["deliveryId"] != "ignored-by-the-service"
    assert body["confirmationRequired"] == "FingerPrint"
    assert body["packageInfo"]["size"] == "Medium"
    assert body["dropOffLocation"] == {"latitude": 47.6097, "longitude": -122.3331, "altitude": 40}


def test_free_text_locations_are_refused(gateway: httpx.Client) -> None:
    response = gateway.post(
        "/api/deliveryrequests",
        json=delivery_request(pickupLocation="the blue house on the corner"),
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert "pickupLocation" in {error["field"] for error in response.json()["errors"]}
