"""`make demo`: send a few delivery requests through the gateway and watch them fly to Completed."""

from __future__ import annotations

import math
import random
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from devstack.stack import Stack, StackSettings

# Places around Seattle, where the simulated fleet is based.
PLACES = {
    "Space Needle": (47.6205, -122.3493),
    "Pike Place": (47.6097, -122.3422),
    "UW campus": (47.6553, -122.3035),
    "Fremont Troll": (47.6510, -122.3473),
    "Seward Park": (47.5502, -122.2564),
    "Ballard Locks": (47.6654, -122.3972),
    "Alki Beach": (47.5763, -122.4096),
    "Capitol Hill": (47.6253, -122.3222),
    "Georgetown": (47.5480, -122.3213),
    "Green Lake": (47.6801, -122.3287),
}
# Drones fly 10-40 km on a charge, from their base and back: the demo keeps to short hops.
NEARBY_PAIRS = [
    (a, b)
    for a in sorted(PLACES)
    for b in sorted(PLACES)
    if a != b and math.dist(PLACES[a], PLACES[b]) < 0.06  # degrees: about 5 km here
]
STAGES = ["Requested", "Scheduled", "HeadedToPickup", "HeadedToDropoff", "Completed"]
TERMINAL = {"Completed", "Cancelled", "Failed"}


@dataclass
class Tracked:
    delivery_id: str
    route: str
    stage: str = "Requested"
    drone: str = ""
    dropoff_eta: str | None = None
    reason: str = ""


def run_demo(settings: StackSettings, *, deliveries: int, timeout: float) -> int:
    console = Console()
    with ExitStack() as cleanup:
        stack = Stack(settings)
        if not _is_up(stack.gateway_url):
            console.print("The system is not running: starting it for the demo ...")
            cleanup.enter_context(stack)
        with httpx.Client(base_url=stack.gateway_url, timeout=10) as client:
            tracked = [_request_delivery(client, i) for i in range(deliveries)]
            deadline = time.monotonic() + timeout
            with Live(_table(tracked), console=console, refresh_per_second=4) as live:
                while time.monotonic() < deadline and not all(t.stage in TERMINAL for t in tracked):
                    for delivery in tracked:
                        _refresh(client, delivery)
                    live.update(_table(tracked))
                    time.sleep(0.5)
    completed = sum(t.stage == "Completed" for t in tracked)
    for delivery in tracked:
        if delivery.reason:
            console.print(f"{delivery.delivery_id[:8]} {delivery.stage}: {delivery.reason}")
    console.print(f"{completed} of {len(tracked)} deliveries completed.")
    return 0 if completed == len(tracked) else 1


def _is_up(gateway_url: str) -> bool:
    try:
        return httpx.get(f"{gateway_url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _request_delivery(client: httpx.Client, number: int) -> Tracked:
    pickup, dropoff = random.choice(NEARBY_PAIRS)
    response = client.post(
        "/api/deliveryrequests",
        json={
            "ownerId": "demo",
            "pickupLocation": _location(PLACES[pickup]),
            "dropOffLocation": _location(PLACES[dropoff]),
            "expedited": number == 0,
            "packageInfo": {
                "size": random.choice(["Small", "Medium", "Large"]),
                "weight": round(random.uniform(0.5, 10), 1),
                "tag": f"demo parcel {number + 1}",
            },
        },
    )
    response.raise_for_status()
    return Tracked(response.json()["deliveryId"], f"{pickup} → {dropoff}")


def _location(point: tuple[float, float]) -> dict[str, float]:
    return {"latitude": point[0], "longitude": point[1]}


def _refresh(client: httpx.Client, delivery: Tracked) -> None:
    if delivery.stage in TERMINAL:
        return
    response = client.get(f"/api/deliveries/{delivery.delivery_id}")
    if response.status_code != 200:
        return
    body: dict[str, Any] = response.json()
    delivery.stage = body["stage"]
    delivery.drone = body.get("droneId") or ""
    delivery.dropoff_eta = body.get("dropoffEta")
    delivery.reason = body.get("failureReason") or ""


def _table(tracked: list[Tracked]) -> Table:
    table = Table(title="Drone Delivery demo")
    table.add_column("delivery", no_wrap=True)
    table.add_column("route")
    table.add_column("drone", no_wrap=True)
    table.add_column("stage", no_wrap=True)
    table.add_column("progress", no_wrap=True)
    table.add_column("drop-off in", justify="right", no_wrap=True)
    for delivery in tracked:
        done = STAGES.index(delivery.stage) if delivery.stage in STAGES else 0
        table.add_row(
            delivery.delivery_id[:8],
            delivery.route,
            delivery.drone,
            delivery.stage,
            ProgressBar(total=len(STAGES) - 1, completed=done, width=16),
            _seconds_until(delivery.dropoff_eta) if delivery.stage not in TERMINAL else "",
        )
    return table


def _seconds_until(moment: str | None) -> str:
    if not moment:
        return ""
    remaining = (datetime.fromisoformat(moment) - datetime.now(UTC)).total_seconds()
    return f"{max(0, remaining):.0f} s"
