"""What the delivery service's tests share: fake neighbours, a valid request, and waiting helpers.

The fake package and scheduler services are real HTTP servers (Starlette) that count their calls.
They follow the contract of the real services (routes, status codes, bodies) closely enough for the
delivery service not to tell the difference, and a test can tell them to answer otherwise for a while
(`answer_next`) or for good (`refuse_every_plan`, `package_aboard`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Json = dict[str, Any]

# Settings for tests. Short enough that waits, leases and sweeps take a fraction of a second, long enough for a loaded
# machine: a lease must outlast one wait plus one call.
FAST: dict[str, Any] = {
    "lease_seconds": 2.0,
    "sweep_interval_seconds": 0.2,
    "retry_initial_seconds": 0.05,
    "retry_max_seconds": 0.3,
    "call_attempt_timeout_seconds": 1.0,
    "call_deadline_seconds": 1.5,
    "change_wait_seconds": 1.0,
    "scheduling_budget_seconds": 8.0,
    "store_timeout_seconds": 5.0,
    "live_location_timeout_seconds": 0.5,
}


@dataclass(frozen=True)
class Scripted:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Json | None = None

    def response(self) -> Response:
        if self.body is None:
            return Response(status_code=self.status, headers=self.headers)
        return JSONResponse(
            self.body,
            status_code=self.status,
            headers=self.headers,
            media_type="application/problem+json" if self.status >= 400 else None,
        )


class _Scripts:
    """Answers to give instead of the normal ones, per method, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: dict[str, list[Scripted]] = {}

    def add(self, method: str, answer: Scripted, times: int) -> None:
        with self._lock:
            self._queued.setdefault(method, []).extend([answer] * times)

    def clear(self) -> None:
        with self._lock:
            self._queued.clear()

    def next(self, method: str) -> Scripted | None:
        with self._lock:
            queued = self._queued.get(method)
            return queued.pop(0) if queued else None


class FakePackageService:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything: a server shared by several tests starts each of them afresh."""
        self.packages: dict[str, Json] = {}
        self.calls: Counter[str] = Counter()
        self._scripts = _Scripts()

    def answer_next(self, method: str, status: int, *, times: int = 1) -> None:
        self._scripts.add(
            method, Scripted(status, body={"title": "scripted", "status": status}), times
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/api/packages/{id}", self._handle, methods=["GET", "PUT", "DELETE"])]
        )

    async def _handle(self, request: Request) -> Response:
        method = request.method
        self.calls[method] += 1
        id = request.path_params["id"]
        if (scripted := self._scripts.next(method)) is not None:
            return scripted.response()
        if method == "GET":
            if id not in self.packages:
                return JSONResponse({"title": "Not Found", "status": 404}, status_code=404)
            return JSONResponse({"id": id, **self.packages[id]})
        if method == "DELETE":
            self.packages.pop(id, None)
            return Response(status_code=204)
        body = await request.json()
        if not (body.get("size") and body.get("weight", 0) > 0 and body.get("tag")):
            return JSONResponse({"title": "Unprocessable", "status": 422}, status_code=422)
        created = id not in self.packages
        self.packages[id] = body
        if created:
            return JSONResponse({"id": id, **body}, status_code=201)
        return Response(status_code=204)


CONTRACT_FIELDS = {
    "deliveryId",
    "ownerId",
    "pickup",
    "dropoff",
    "pickupTime",
    "expedited",
    "packageDetail",
}


class FakeScheduler:
    """Assigns drones `drone-1`, `drone-2`, ... and plans a pickup 5 and a drop-off 20 minutes ahead."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything: a server shared by several tests starts each of them afresh."""
        self.assignments: dict[str, Json] = {}
        self.plans: dict[str, Json] = {}
        self.calls: Counter[str] = Counter()
        self.released: Counter[str] = Counter()
        self.package_aboard: set[str] = set()
        self.refuse_every_plan: str | None = None
        self.refuse_plans_to: tuple[float, float] | None = None
        self.flight_minutes = 20
        self.live_location: Json | None = {"latitude": 47.6, "longitude": -122.3}
        self.on_put: Callable[[str], Awaitable[None]] | None = None
        self._drones = 0
        self._scripts = _Scripts()

    def answer_next(
        self, method: str, status: int, *, times: int = 1, retry_after: str | None = None
    ) -> None:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        body = {"title": "scripted", "status": status, "detail": f"scripted {status}"}
        self._scripts.add(method, Scripted(status, headers, body), times)

    def answer_normally(self) -> None:
        self._scripts.clear()

    @property
    def drones_held(self) -> int:
        return len(self.assignments)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/dronedeliveries/{id}", self._handle, methods=["GET", "PUT", "DELETE"])
            ]
        )

    async def _handle(self, request: Request) -> Response:
        method = request.method
        self.calls[method] += 1
        id = request.path_params["id"]
        if method == "PUT" and self.on_put is not None:
            await self.on_put(id)
        if (scripted := self._scripts.next(method)) is not None:
            return scripted.response()
        if method == "GET":
            if id not in self.assignments:
                return _problem(404, "no assignment")
            return JSONResponse(
                {**self.assignments[id], "status": "Flying", "location": self.live_location}
            )
        if method == "DELETE":
            if id in self.package_aboard:
                return _problem(409, "the package is aboard")
            if self.assignments.pop(id, None) is not None:
                self.released[id] += 1
            self.plans.pop(id, None)
            return Response(status_code=204)
        return self._plan(id, await request.json())

    def _plan(self, id: str, body: Json) -> Response:
        if set(body) != CONTRACT_FIELDS or body["deliveryId"] != id:
            return _problem(422, f"not the contract's body: {sorted(body)}")
        if id in self.package_aboard:
            return _problem(409, "the package is aboard")
        if self.refuse_every_plan is not None:
            return _problem(422, self.refuse_every_plan)
        if (
            self.refuse_plans_to is not None
            and (
                body["dropoff"]["latitude"],
                body["dropoff"]["longitude"],
            )
            == self.refuse_plans_to
        ):
            return _problem(422, "the drop-off is out of every drone's range")
        if self.plans.get(id) == body:
            return JSONResponse(self.assignments[id], status_code=200)
        status = 200 if id in self.assignments else 201
        if status == 201:
            self._drones += 1
        drone = self.assignments[id]["droneId"] if status == 200 else f"drone-{self._drones}"
        start = max(datetime.fromisoformat(body["pickupTime"]), datetime.now(UTC))
        self.plans[id] = body
        self.assignments[id] = {
            "deliveryId": id,
            "droneId": drone,
            "pickupEta": _iso(start + timedelta(minutes=5)),
            "dropoffEta": _iso(start + timedelta(minutes=5 + self.flight_minutes)),
            "distanceKm": 12.5,
        }
        return JSONResponse(self.assignments[id], status_code=status)


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse(
        {"title": "problem", "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    timeout: float = 15.0,
    what: str | Callable[[], str] = "the condition",
) -> None:
    """Wait until `check()` holds; fail the test if it does not within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            description = what if isinstance(what, str) else what()
            raise AssertionError(f"{description} did not happen within {timeout} s")
        await asyncio.sleep(0.05)


def delivery_request(**changes: Any) -> Json:
    """A valid request inside the fleet's area (Seattle), with `changes` applied."""
    request: Json = {
        "ownerId": "alice",
        "pickupLocation": {"latitude": 47.6097, "longitude": -122.3331},
        "dropOffLocation": {"latitude": 47.6553, "longitude": -122.3035},
        "packageInfo": {"size": "Small", "weight": 2.5, "tag": "books"},
    }
    request.update(changes)
    return request


async def request_delivery(client: httpx.AsyncClient, **changes: Any) -> str:
    response = await client.post("/api/deliveryrequests", json=delivery_request(**changes))
    assert response.status_code == 202, response.text
    delivery_id: str = response.json()["deliveryId"]
    return delivery_id


async def delivery(client: httpx.AsyncClient, delivery_id: str) -> Json:
    response = await client.get(f"/api/deliveries/{delivery_id}")
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


async def reach_stage(
    client: httpx.AsyncClient, delivery_id: str, stage: str, *, timeout: float = 15.0
) -> Json:
    """Wait until the delivery is in `stage`; answer it then."""
    seen: Json = {}

    async def in_stage() -> bool:
        seen.update(await delivery(client, delivery_id))
        return bool(seen["stage"] == stage)

    await eventually(in_stage, timeout=timeout, what=lambda: f"stage {stage} (last seen: {seen})")
    return seen


async def event_stages(client: httpx.AsyncClient, delivery_id: str) -> list[str]:
    response = await client.get(f"/api/deliveries/{delivery_id}/events")
    assert response.status_code == 200, response.text
    return [event["stage"] for event in response.json()]
