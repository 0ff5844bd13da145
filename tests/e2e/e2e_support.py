"""What the end-to-end tests share: the request they start from, and waiting for a stage."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from devstack.gateway import GatewayLimits

TERMINAL = {"Completed", "Cancelled", "Failed"}
RATE_LIMIT = GatewayLimits(max_body_size="16k", rate_limit="100r/s", rate_burst=200)


def delivery_request(**overrides: Any) -> dict[str, Any]:
    """A delivery across central Seattle, well inside every drone's range."""
    request: dict[str, Any] = {
        "ownerId": "e2e-owner",
        "pickupLocation": {"latitude": 47.6205, "longitude": -122.3493},
        "dropOffLocation": {"latitude": 47.6097, "longitude": -122.3331},
        "packageInfo": {"size": "Small", "weight": 1.5, "tag": "e2e parcel"},
    }
    request.update(overrides)
    return request


def wait_for_stage(
    gateway: httpx.Client, delivery_id: str, stages: set[str], timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = gateway.get(f"/api/deliveries/{delivery_id}")
        assert response.status_code == 200, response.text
        delivery: dict[str, Any] = response.json()
        if delivery["stage"] in stages:
            return delivery
        if time.monotonic() > deadline:
            pytest.fail(
                f"delivery {delivery_id} is {delivery['stage']}, not {stages}, after {timeout} s"
            )
        time.sleep(0.2)
