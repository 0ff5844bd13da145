"""What the scheduler's tests share: settings for a throwaway scheduler, request bodies, a stand-in
for the delivery service that records what it receives, and waiting for something to become true."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scheduler_service.app import create_app
from scheduler_service.settings import SchedulerSettings
from servicekit.testing import free_port, serve_in_thread

T = TypeVar("T")

SODO = (47.5801, -122.3344)
"""drone-001's base: the heavy lifter (25 kg, Large) of every fleet."""
NORTHGATE = (47.7062, -122.3259)
"""drone-002's base."""

KM_IN_LATITUDE = 1 / 111.195


def location(at: tuple[float, float], *, km_north: float = 0.0) -> dict[str, float]:
    return {"latitude": at[0] + km_north * KM_IN_LATITUDE, "longitude": at[1]}


def delivery(
    delivery_id: str,
    *,
    near: tuple[float, float] = SODO,
    pickup_km: float = 1.0,
    dropoff_km: float = 3.0,
    size: str = "Small",
    weight: float = 1.5,
    **fields: Any,
) -> dict[str, Any]:
    """A request body: picked up `pickup_km` north of `near`, dropped off `dropoff_km` north of it."""
    return {
        "deliveryId": delivery_id,
        "ownerId": "fabrikam",
        "pickup": location(near, km_north=pickup_km),
        "dropoff": location(near, km_north=dropoff_km),
        "packageDetail": {"id": f"pkg-{delivery_id}", "size": size, "weight": weight},
        **fields,
    }


def scheduler_settings(tmp_path: Path, **overrides: Any) -> SchedulerSettings:
    """A scheduler on its own SQLite file that flies in real time and notifies nobody, unless told."""
    values: dict[str, Any] = {
        "store_url": f"sqlite:///{tmp_path}/scheduler.db",
        "delivery_service_url": f"http://127.0.0.1:{free_port()}",
        "sim_speedup": 1.0,
        "tick_seconds": 0.05,
        "store_timeout_seconds": 5.0,
        "expedited_reserve": 0.0,
    }
    return SchedulerSettings(**(values | overrides))


@contextmanager
def serve_scheduler(settings: SchedulerSettings) -> Iterator[str]:
    with serve_in_thread(create_app(settings)) as url:
        yield url


@asynccontextmanager
async def scheduler_client(tmp_path: Path, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a scheduler started with `scheduler_settings(tmp_path, **overrides)`."""
    with serve_scheduler(scheduler_settings(tmp_path, **overrides)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            yield client


async def eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = 15.0, every: float = 0.05
) -> T:
    """Poll `check` until it returns something truthy; fail with its last answer after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s; last: {result!r}")
        await asyncio.sleep(every)


async def until(condition: Callable[[], bool], *, timeout: float = 15.0) -> None:
    """Wait until `condition()` holds (it looks at what a test server recorded)."""

    async def check() -> bool:
        return condition()

    await eventually(check, timeout=timeout)


async def drone(client: httpx.AsyncClient, drone_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/drones/{drone_id}")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def wait_for_drone(
    client: httpx.AsyncClient, drone_id: str, status: str = "Available"
) -> dict[str, Any]:
    """The drone, once its status is `status`."""

    async def in_status() -> dict[str, Any] | None:
        found = await drone(client, drone_id)
        return found if found["status"] == status else None

    found: dict[str, Any] | None = await eventually(in_status)
    assert found is not None
    return found


async def wait_for_the_fleet_at_home(client: httpx.AsyncClient) -> None:
    async def at_home() -> bool:
        fleet: list[dict[str, Any]] = (await client.get("/api/drones")).json()
        return all(drone["status"] == "Available" for drone in fleet)

    await eventually(at_home)


@dataclass
class DeliveryReceiver:
    """The delivery service's internal routes, as far as the scheduler uses them: it records every
    post, answers 204, and can be told to fail the next posts or to know only some deliveries."""

    posts: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    failures_left: int = 0
    unknown_deliveries: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle(self, request: Request) -> Response:
        delivery_id, route = request.path_params["id"], request.url.path.rsplit("/", 1)[1]
        body = await request.json()
        with self._lock:
            self.posts.append((delivery_id, route, body))
            if self.failures_left > 0:
                self.failures_left -= 1
                return Response(status_code=500)
        if delivery_id in self.unknown_deliveries:
            return Response(status_code=404)
        return Response(status_code=204)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/deliveries/{id}/events", self.handle, methods=["POST"]),
                Route("/api/deliveries/{id}/confirmations", self.handle, methods=["POST"]),
            ]
        )

    def taken(self, delivery_id: str) -> list[str]:
        """What took effect for a delivery, in order: each eventId once, as the delivery service
        deduplicates them. Events are named by stage, the confirmation `Confirmation`."""
        seen: set[str] = set()
        effects = []
        with self._lock:
            posts = list(self.posts)
        for posted_for, route, body in posts:
            if posted_for != delivery_id or body["eventId"] in seen:
                continue
            seen.add(body["eventId"])
            effects.append(body["stage"] if route == "events" else "Confirmation")
        return effects

    def bodies(self, delivery_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [body for posted_for, _, body in self.posts if posted_for == delivery_id]
