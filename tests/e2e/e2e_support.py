"""What the end-to-end tests share: the stack's settings, the request they start from, and waiting
for a stage or a condition."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.gateway import GatewayLimits
from devstack.stack import Ports, StackSettings
from servicekit.testing import free_port

TERMINAL = {"Completed", "Cancelled", "Failed"}
COMPLETED_EVENTS = ["Created", "Scheduled", "HeadedToPickup", "HeadedToDropoff", "Completed"]
"""The events of a delivery flown to completion, each once, in order."""
RATE_LIMIT = GatewayLimits(max_body_size="16k", rate_limit="100r/s", rate_burst=200)


def stack_settings(data_dir: Path, env: Mapping[str, str] | None = None) -> StackSettings:
    """The whole system on free ports, flying fast; `env` adds settings (e.g. other stores)."""
    return StackSettings(
        data_dir=data_dir,
        ports=Ports(
            gateway=free_port(), delivery=free_port(), package=free_port(), scheduler=free_port()
        ),
        limits=RATE_LIMIT,
        env={
            # Flights of a few minutes of simulated time take a second or two here.
            "SCHEDULER_SIM_SPEEDUP": "300",
            "SCHEDULER_FLEET_SIZE": "20",
            **(env or {}),
        },
    )


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
    gateway: httpx.Client,
    delivery_id: str,
    stages: set[str],
    timeout: float = 60,
    *,
    retry_unavailable: bool = False,
) -> dict[str, Any]:
    """The delivery once it is in one of `stages`. With `retry_unavailable`, a 503 with
    Retry-After (a test made the service's store fail on purpose) means "not yet": ask again."""
    deadline = time.monotonic() + timeout
    while True:
        response = gateway.get(f"/api/deliveries/{delivery_id}")
        if retry_unavailable and response.status_code == 503:
            assert "retry-after" in response.headers, response.text
            delivery: dict[str, Any] = {"stage": "(unavailable)"}
        else:
            assert response.status_code == 200, response.text
            delivery = response.json()
        if delivery["stage"] in stages:
            return delivery
        if time.monotonic() > deadline:
            pytest.fail(
                f"delivery {delivery_id} is {delivery['stage']}, not {stages}, after {timeout} s"
            )
        time.sleep(0.2)


def eventually(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    """Wait until `condition()` holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.2)
