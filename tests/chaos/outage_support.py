"""Store outages for real, and what a client sees while one lasts.

SQLite: another connection holds `BEGIN EXCLUSIVE` on the service's database file. The stores run in
WAL mode, where that lock stops every writer but lets readers on: requests that write wait for it,
reads go on. PostgreSQL: the database refuses connections and its open ones are ended, as a failover
or a network cut would; there every request that touches the store waits for it.
"""

from __future__ import annotations

import sqlite3
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from chaos_support import TERMINAL

PROBLEM_JSON = "application/problem+json"
# The services answer a store that does not answer within their store timeout (1 s) with a 503;
# the margin is for this machine, where other tests run too.
ANSWER_WITHIN_SECONDS = 2.0


@contextmanager
def exclusive_lock(database: Path) -> Iterator[None]:
    """Hold an exclusive lock on a SQLite database file from another connection."""
    connection = sqlite3.connect(database, timeout=10, isolation_level=None)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        yield
        connection.execute("ROLLBACK")
    finally:
        connection.close()


@dataclass
class Probe:
    """Requests sent while the store is out: what came back, and how fast."""

    name: str
    statuses: Counter[int] = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)

    def send(
        self,
        client: httpx.Client,
        method: str,
        path: str,
        *,
        expect: int,
        problem: bool = True,
        **kwargs: Any,
    ) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            self.faults.append(f"{method} {path}: no answer ({type(exc).__name__})")
            self.statuses[0] += 1
            return None
        elapsed = time.monotonic() - started
        self.seconds.append(elapsed)
        self.statuses[response.status_code] += 1
        if response.status_code != expect:
            self.faults.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
        elif expect == 503 and not response.headers.get("retry-after", "").isdigit():
            self.faults.append(f"{method} {path}: 503 without Retry-After")
        elif problem and response.headers.get("content-type") != PROBLEM_JSON:
            self.faults.append(f"{method} {path}: {response.headers.get('content-type')}")
        if elapsed > ANSWER_WITHIN_SECONDS:
            self.faults.append(f"{method} {path}: answered after {elapsed:.2f} s")
        return response

    def line(self) -> str:
        statuses = ", ".join(f"{s} x{n}" for s, n in sorted(self.statuses.items()))
        timing = (
            f"median {statistics.median(self.seconds):.2f} s, slowest {max(self.seconds):.2f} s"
            if self.seconds
            else "no answers"
        )
        return f"    {self.name:<44} {statuses:<16} {timing}"


def delivery_request(index: int, *, later_seconds: float = 0.0) -> dict[str, Any]:
    request: dict[str, Any] = {
        "ownerId": "outage-owner",
        "pickupLocation": {"latitude": 47.6205, "longitude": -122.3493},
        "dropOffLocation": {"latitude": 47.6097 + index * 0.001, "longitude": -122.3331},
        "packageInfo": {"size": "Small", "weight": 1.5, "tag": f"outage parcel {index}"},
    }
    if later_seconds:
        pickup = time.time() + later_seconds
        request["pickupTime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(pickup))
    return request


@dataclass
class Customer:
    """A client of the public API: a request, its Idempotency-Key, and the delivery once accepted."""

    request: dict[str, Any]
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    delivery_id: str | None = None

    def post(self, gateway: httpx.Client) -> httpx.Response:
        response = gateway.post(
            "/api/deliveryrequests", json=self.request, headers={"Idempotency-Key": self.key}
        )
        if response.status_code == 202:
            self.delivery_id = response.json()["deliveryId"]
        return response


def wait_until_finished(
    gateway: httpx.Client, delivery_ids: list[str], *, timeout: float
) -> dict[str, str]:
    """The stage of each delivery once all are finished, or as they are when `timeout` runs out."""
    stages: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while True:
        for delivery_id in delivery_ids:
            if stages.get(delivery_id) not in TERMINAL:
                response = gateway.get(f"/api/deliveries/{delivery_id}")
                stages[delivery_id] = (
                    response.json()["stage"] if response.status_code == 200 else str(response)
                )
        if all(stage in TERMINAL for stage in stages.values()) or time.monotonic() > deadline:
            return stages
        time.sleep(0.5)


def during(seconds: float, step: Callable[[int], None], *, every: float = 0.5) -> int:
    """Call `step(i)` every `every` seconds for `seconds`; answer how many times it ran."""
    ends_at = time.monotonic() + seconds
    count = 0
    while time.monotonic() < ends_at:
        started = time.monotonic()
        step(count)
        count += 1
        time.sleep(max(0.0, every - (time.monotonic() - started)))
    return count
