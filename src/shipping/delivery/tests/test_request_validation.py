"""Bad input on every route: a 4xx problem naming what is wrong, never a 500, nothing stored.

None of these tests changes what the others see, so they share one delivery service (and its fake
neighbours) to stay fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from delivery_testkit import (
    FAST,
    FakePackageService,
    FakeScheduler,
    delivery_request,
    request_delivery,
)

from delivery_service.app import create_app
from delivery_service.settings import DeliverySettings
from servicekit.testing import serve_in_thread

PROBLEM_JSON = "application/problem+json"


@pytest.fixture(scope="module")
def delivery_service_url(
    tmp_path_factory: pytest.TempPathFactory,
    package_service: tuple[FakePackageService, str],
    scheduler_service: tuple[FakeScheduler, str],
) -> Iterator[str]:
    settings = DeliverySettings(
        store_url=f"sqlite:///{tmp_path_factory.mktemp('validation') / 'delivery.db'}",
        package_service_url=package_service[1],
        scheduler_service_url=scheduler_service[1],
        **FAST,
    )
    with serve_in_thread(create_app(settings)) as url:
        yield url


async def count_of(client: httpx.AsyncClient, owner: str = "alice") -> int:
    now = datetime.now(UTC)
    response = await client.get(
        "/api/deliveries/summary", params={"ownerId": owner, "year": now.year, "month": now.month}
    )
    count: int = response.json()["count"]
    return count


def _in(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"pickupLocation": "Seattle, WA"}, "pickupLocation"),
        ({"pickupLocation": "47.6"}, "pickupLocation"),
        ({"pickupLocation": "nan,1"}, "pickupLocation.latitude"),
        ({"dropOffLocation": "1,2,3,4"}, "dropOffLocation"),
        ({"dropOffLocation": {"latitude": 91, "longitude": 0}}, "dropOffLocation.latitude"),
        ({"dropOffLocation": {"latitude": 0, "longitude": -181}}, "dropOffLocation.longitude"),
        ({"dropOffLocation": {"latitude": 0}}, "dropOffLocation.longitude"),
        ({"pickupTime": _in(3), "deadline": _in(2)}, "deadline"),
        ({"deadline": _in(-1)}, "deadline"),
        ({"pickupTime": "2026-11-26T10:00:00"}, "pickupTime"),
        ({"pickupTime": "0001-01-01T00:00:00+05:00"}, "pickupTime"),
        ({"pickupTime": "tomorrow"}, "pickupTime"),
        ({"ownerId": "al ice"}, "ownerId"),
        ({"ownerId": "a/b"}, "ownerId"),
        ({"ownerId": "x" * 65}, "ownerId"),
        ({"ownerId": ""}, "ownerId"),
        ({"ownerId": ".."}, "ownerId"),  # not an id: a URL path segment that means "up"
        ({"confirmationRequired": "Retina"}, "confirmationRequired"),
        ({"expedited": "maybe"}, "expedited"),
        ({"packageInfo": {"size": "Huge", "weight": 1, "tag": "t"}}, "packageInfo.size"),
        ({"packageInfo": {"size": "Small", "weight": 0, "tag": "t"}}, "packageInfo.weight"),
        ({"packageInfo": {"size": "Small", "weight": -2, "tag": "t"}}, "packageInfo.weight"),
        ({"packageInfo": {"size": "Small", "weight": 25.5, "tag": "t"}}, "packageInfo.weight"),
        ({"packageInfo": {"size": "Small", "weight": "heavy", "tag": "t"}}, "packageInfo.weight"),
        ({"packageInfo": {"size": "Small", "weight": 1, "tag": ""}}, "packageInfo.tag"),
        ({"packageInfo": {"size": "Small", "weight": 1, "tag": "x" * 65}}, "packageInfo.tag"),
        (
            {"packageInfo": {"packageId": "a b", "size": "Small", "weight": 1, "tag": "t"}},
            "packageInfo.packageId",
        ),
        (
            {"packageInfo": {"packageId": ".", "size": "Small", "weight": 1, "tag": "t"}},
            "packageInfo.packageId",
        ),
        ({"packageInfo": None}, "packageInfo"),
        ({"ownerId": None}, "ownerId"),
    ],
)
async def test_bad_requests_are_422_naming_the_field_and_store_nothing(
    client: httpx.AsyncClient, changes: dict[str, Any], field: str
) -> None:
    before = await count_of(client)

    response = await client.post("/api/deliveryrequests", json=delivery_request(**changes))

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert field in {error["field"] for error in response.json()["errors"]}
    assert await count_of(client) == before, "nothing is stored"


@pytest.mark.parametrize(
    "raw",
    [b'{"ownerId": "alice", ', b"[1, 2]", b"\xc3\x28", b'"just a string"', b""],
)
async def test_malformed_bodies_are_4xx_problems(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post(
        "/api/deliveryrequests", content=raw, headers={"content-type": "application/json"}
    )

    assert response.status_code in (400, 422)
    assert response.headers["content-type"] == PROBLEM_JSON


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "ünïcode"])
async def test_an_idempotency_key_that_is_not_one_is_422(
    client: httpx.AsyncClient, key: str
) -> None:
    response = await client.post(
        "/api/deliveryrequests",
        json=delivery_request(),
        headers={b"Idempotency-Key": key.encode()},
    )

    assert response.status_code == 422
    assert "Idempotency-Key" in {error["field"] for error in response.json()["errors"]}


@pytest.mark.parametrize(
    ("method", "body"),
    [("DELETE", None), ("PATCH", {"pickupLocation": "47.6,-122.3"})],
)
async def test_changing_an_unknown_delivery_is_404(
    client: httpx.AsyncClient, method: str, body: dict[str, Any] | None
) -> None:
    response = await client.request(method, "/api/deliveryrequests/no-such-delivery", json=body)

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON


async def test_an_id_that_is_not_one_is_422(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/deliveryrequests/" + "x" * 65)

    assert response.status_code == 422


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"somethingElse": 1}, "body"),
        ({"pickupLocation": None}, "body"),
        ({"dropOffLocation": "the corner shop"}, "dropOffLocation"),
        ({"deadline": _in(-2)}, "deadline"),
        ({"pickupTime": _in(5), "deadline": _in(4)}, "deadline"),
    ],
)
async def test_bad_reschedules_are_422(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    delivery_id = await request_delivery(client)

    response = await client.patch(f"/api/deliveryrequests/{delivery_id}", json=body)

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert field in {error["field"] for error in response.json()["errors"]}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/deliveries/nope"),
        ("GET", "/api/deliveries/nope/status"),
        ("GET", "/api/deliveries/nope/events"),
        ("GET", "/api/deliveries/nope/owner"),
    ],
)
async def test_reading_an_unknown_delivery_is_404(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path)

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON


async def test_notify_me_for_an_unknown_delivery_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/deliveries/nope/notifymerequests", json={"emailAddress": "a@example.com"}
    )

    assert response.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"emailAddress": None, "sms": None}, "body"),
        ({"emailAddress": "not an address"}, "emailAddress"),
        ({"emailAddress": "a@b"}, "emailAddress"),
        ({"emailAddress": "x" * 250 + "@example.com"}, "emailAddress"),
        ({"sms": "call me"}, "sms"),
        ({"sms": "+0123456789"}, "sms"),
        ({"sms": "12345"}, "sms"),
    ],
)
async def test_bad_notify_me_requests_are_422(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    delivery_id = await request_delivery(client)

    response = await client.post(f"/api/deliveries/{delivery_id}/notifymerequests", json=body)

    assert response.status_code == 422
    assert field in {error["field"] for error in response.json()["errors"]}


@pytest.mark.parametrize(
    "params",
    [
        {"year": 2026, "month": 1},
        {"ownerId": "alice", "month": 1},
        {"ownerId": "alice", "year": 2026, "month": 13},
        {"ownerId": "alice", "year": 2026, "month": 0},
        {"ownerId": "alice", "year": "twenty", "month": 1},
        {"ownerId": "al ice", "year": 2026, "month": 1},
    ],
)
async def test_a_summary_with_missing_or_invalid_parameters_is_422(
    client: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    response = await client.get("/api/deliveries/summary", params=params)

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON


def flight_report(**changes: Any) -> dict[str, Any]:
    return {
        "eventId": "e1",
        "stage": "HeadedToPickup",
        "time": datetime.now(UTC).isoformat(),
        "location": {"latitude": 47.61, "longitude": -122.33},
        "droneId": "drone-1",
        **changes,
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (flight_report(stage="Completed"), "stage"),
        (flight_report(stage="Cancelled"), "stage"),
        (flight_report(eventId=""), "eventId"),
        (flight_report(location="47.6,-122.3"), "location"),
        (flight_report(time="yesterday"), "time"),
        (flight_report(droneId=None), "droneId"),
    ],
)
async def test_bad_flight_reports_are_422(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    delivery_id = await request_delivery(client)

    response = await client.post(f"/api/deliveries/{delivery_id}/events", json=body)

    assert response.status_code == 422
    assert field in {error["field"] for error in response.json()["errors"]}


@pytest.mark.parametrize("kind", ["events", "confirmations"])
async def test_reports_about_an_unknown_delivery_are_404(
    client: httpx.AsyncClient, kind: str
) -> None:
    response = await client.post(f"/api/deliveries/nope/{kind}", json=flight_report())

    assert response.status_code == 404


async def test_a_confirmation_with_an_unknown_type_is_422(client: httpx.AsyncClient) -> None:
    delivery_id = await request_delivery(client)
    body = {**flight_report(), "confirmationType": "Telepathy"}
    del body["stage"]

    response = await client.post(f"/api/deliveries/{delivery_id}/confirmations", json=body)

    assert response.status_code == 422
    assert "confirmationType" in {error["field"] for error in response.json()["errors"]}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"ownerId": "x y"}, "ownerId"),
        ({"packageInfo": {"size": "Small", "weight": 30, "tag": "t"}}, "packageInfo.weight"),
        ({"dropOffLocation": "the moon"}, "dropOffLocation"),
    ],
)
async def test_a_bad_put_of_a_delivery_is_422_and_stores_nothing(
    client: httpx.AsyncClient, changes: dict[str, Any], field: str
) -> None:
    response = await client.put("/api/deliveries/put-bad", json=delivery_request(**changes))

    assert response.status_code == 422
    assert field in {error["field"] for error in response.json()["errors"]}
    assert (await client.get("/api/deliveries/put-bad")).status_code == 404
