"""The real stack for the end-to-end tests: nginx and the three services under supervisord.

Requests go through the gateway only. Side effects that the public API does not show (a package
removed, a drone released) are checked at the internal services' own ports.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from devstack.gateway import GatewayLimits
from devstack.stack import Ports, Stack, StackSettings
from servicekit.testing import free_port

TERMINAL = {"Completed", "Cancelled", "Failed"}
RATE_LIMIT = GatewayLimits(max_body_size="16k", rate_limit="100r/s", rate_burst=200)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = StackSettings(
        data_dir=tmp_path_factory.mktemp("stack"),
        ports=Ports(
            gateway=free_port(), delivery=free_port(), package=free_port(), scheduler=free_port()
        ),
        limits=RATE_LIMIT,
        env={
            # Flights of a few minutes of simulated time take a second or two here.
            "SCHEDULER_SIM_SPEEDUP": "300",
            "SCHEDULER_FLEET_SIZE": "20",
        },
    )
    with Stack(settings) as running:
        yield running


@pytest.fixture
def gateway(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as client:
        yield client


@pytest.fixture
def internal(stack: Stack) -> Iterator[Callable[[str], httpx.Client]]:
    """A client for one internal service, for checking what the public API does not show."""
    clients: list[httpx.Client] = []

    def client(service: str) -> httpx.Client:
        clients.append(httpx.Client(base_url=stack.service_url(service), timeout=10))
        return clients[-1]

    yield client
    for opened in clients:
        opened.close()


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
