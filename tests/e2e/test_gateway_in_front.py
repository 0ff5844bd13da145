"""The gateway's offloading, in front of the real delivery service."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from e2e_support import RATE_LIMIT, delivery_request

PROBLEM_JSON = "application/problem+json"


def test_internal_routes_are_closed_from_outside(gateway: httpx.Client) -> None:
    delivery_id = gateway.post("/api/deliveryrequests", json=delivery_request()).json()[
        "deliveryId"
    ]

    for method, path in [
        ("POST", f"/api/deliveries/{delivery_id}/confirmations"),
        ("POST", f"/api/deliveries/{delivery_id}/events"),
        ("PUT", f"/api/deliveries/{delivery_id}"),
        ("GET", "/api/drones"),
        ("GET", "/api/packages/summary"),
        ("PUT", f"/api/dronedeliveries/{delivery_id}"),
    ]:
        response = gateway.request(method, path, json={})
        assert response.status_code == 404, (method, path)
        assert response.headers["content-type"] == PROBLEM_JSON


def test_the_request_id_travels_and_comes_back(gateway: httpx.Client) -> None:
    response = gateway.post(
        "/api/deliveryrequests", json=delivery_request(), headers={"X-Request-ID": "e2e-trace-42"}
    )

    assert response.status_code == 202
    assert response.headers.get_list("x-request-id") == ["e2e-trace-42"]


def test_a_body_over_the_limit_is_refused_at_the_gateway(gateway: httpx.Client) -> None:
    huge = delivery_request(packageInfo={"size": "Small", "weight": 1, "tag": "x" * 20_000})

    response = gateway.post("/api/deliveryrequests", json=huge)

    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM_JSON


def test_a_client_over_the_rate_limit_gets_429s(gateway: httpx.Client) -> None:
    requests = RATE_LIMIT.rate_burst * 2
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(
            pool.map(lambda _: gateway.get("/api/deliveries/nope").status_code, range(requests))
        )
    time.sleep(RATE_LIMIT.rate_burst / 100 + 1)  # let the bucket refill for the tests that follow

    assert 429 in statuses
    assert set(statuses) <= {404, 429}
