"""A service's store out for a while (OUTAGE_SECONDS, 15 s by default): the service stays alive,
answers what needs the store with a quick 503 and Retry-After instead of hanging, and afterwards
everything goes on by itself; no delivery accepted before or during the outage is lost.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from chaos_support import chaos_stack_settings
from outage_support import (
    Customer,
    Probe,
    delivery_request,
    during,
    exclusive_lock,
    wait_until_finished,
)

from devstack.stack import Stack
from servicekit.testing_backends.postgres import PostgresTestServer

OUTAGE_SECONDS = float(os.environ.get("OUTAGE_SECONDS", "15"))
RECOVERY_SECONDS = 60.0


@dataclass(frozen=True)
class Requests:
    """What is asked of the system while one service's store is out."""

    write_name: str
    write: Callable[[int], tuple[str, str, dict[str, Any] | None]]
    """A request that must write to the store: it is answered 503."""
    read_name: str
    read: Callable[[Customer], tuple[str, str]]
    """A request that only reads it: on SQLite it is answered, on PostgreSQL 503 too."""
    through_gateway: bool
    """Whether the requests go through the gateway (the public API) or to the service itself."""


def _assignment(index: int) -> dict[str, Any]:
    return {
        "deliveryId": f"outage-probe-{index}",
        "ownerId": "outage-owner",
        "pickup": {"latitude": 47.6205, "longitude": -122.3493},
        "dropoff": {"latitude": 47.6097, "longitude": -122.3331},
        "expedited": False,
        "packageDetail": {"id": f"outage-probe-{index}", "size": "Small", "weight": 1.0},
    }


def _month() -> str:
    now = datetime.now(UTC)
    return f"ownerId=outage-owner&year={now.year}&month={now.month}"


REQUESTS = {
    "delivery": Requests(
        write_name="POST /api/deliveryrequests (gateway)",
        write=lambda i: ("POST", "/api/deliveryrequests", delivery_request(100 + i)),
        read_name="GET /api/deliveries/{id} (gateway)",
        read=lambda customer: ("GET", f"/api/deliveries/{customer.delivery_id}"),
        through_gateway=True,
    ),
    "package": Requests(
        write_name="PUT /api/packages/{id}",
        write=lambda i: (
            "PUT",
            f"/api/packages/outage-probe-{i}",
            {"size": "Small", "weight": 1.0, "tag": "probe"},
        ),
        read_name="GET /api/packages/summary",
        read=lambda customer: ("GET", f"/api/packages/summary?{_month()}"),
        through_gateway=False,
    ),
    "scheduler": Requests(
        write_name="PUT /api/dronedeliveries/{id}",
        write=lambda i: ("PUT", f"/api/dronedeliveries/outage-probe-{i}", _assignment(i)),
        read_name="GET /api/drones",
        read=lambda customer: ("GET", "/api/drones"),
        through_gateway=False,
    ),
}


@pytest.fixture(scope="module")
def outage_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    data = request.config.rootpath / ".data" / "chaos" / "store-outages"
    shutil.rmtree(data, ignore_errors=True)
    with Stack(chaos_stack_settings(data)) as stack:
        yield stack


@pytest.mark.slow
@pytest.mark.timeout(OUTAGE_SECONDS + RECOVERY_SECONDS + 60)
@pytest.mark.parametrize("service", ["delivery", "package", "scheduler"])
def test_a_sqlite_store_held_locked_is_answered_503_and_recovered_from(
    outage_stack: Stack, record_report: Callable[[str, str], None], service: str
) -> None:
    database = outage_stack.data_dir / f"{service}.db"
    outage = Outage(outage_stack, service, REQUESTS[service], reads_answered=True)

    outage.run(lambda: exclusive_lock(database))

    record_report(f"outage-{service}-sqlite", outage.report("SQLite, BEGIN EXCLUSIVE"))
    outage.check()


@pytest.mark.backend
@pytest.mark.slow
@pytest.mark.timeout(OUTAGE_SECONDS + RECOVERY_SECONDS + 90)
def test_a_postgresql_database_refusing_connections_is_answered_503_and_recovered_from(
    request: pytest.FixtureRequest,
    postgres_server: PostgresTestServer,
    odbc_store_url: str,
    record_report: Callable[[str, str], None],
) -> None:
    database = odbc_store_url.split("Database=", 1)[1].split(";", 1)[0]
    data = request.config.rootpath / ".data" / "chaos" / "store-outage-postgresql"
    shutil.rmtree(data, ignore_errors=True)
    settings = chaos_stack_settings(data, PACKAGE_STORE_URL=odbc_store_url)
    with Stack(settings) as stack:
        outage = Outage(stack, "package", REQUESTS["package"], reads_answered=False)

        outage.run(lambda: postgres_server.refusing_connections(database))

        record_report(
            "outage-package-postgresql", outage.report("PostgreSQL, refusing connections")
        )
    outage.check()


class Outage:
    """One outage: deliveries before it, probes and new deliveries during it, recovery after it."""

    def __init__(
        self, stack: Stack, service: str, requests: Requests, *, reads_answered: bool
    ) -> None:
        self.stack = stack
        self.service = service
        self.requests = requests
        self.reads_answered = reads_answered
        self.liveness = Probe(f"GET /livez, /readyz on the {service} service")
        self.writes = Probe(requests.write_name)
        self.reads = Probe(requests.read_name)
        self.customers: list[Customer] = []
        self.answered_during: list[int] = []
        self.stages: dict[str, str] = {}
        self.recovery_seconds = 0.0

    def run(self, out: Callable[[], Any]) -> None:
        with (
            httpx.Client(base_url=self.stack.gateway_url, timeout=10) as gateway,
            httpx.Client(base_url=self.stack.service_url(self.service), timeout=10) as direct,
        ):
            # In flight when the outage starts: picked up a few seconds later.
            before = [Customer(delivery_request(i, later_seconds=4)) for i in range(3)]
            for customer in before:
                assert customer.post(gateway).status_code == 202
            self.customers += before
            target = gateway if self.requests.through_gateway else direct

            def probe(index: int) -> None:
                self.liveness.send(direct, "GET", "/livez", expect=200, problem=False)
                self.liveness.send(direct, "GET", "/readyz", expect=200, problem=False)
                method, path, body = self.requests.write(index)
                self.writes.send(target, method, path, expect=503, json=body)
                method, path = self.requests.read(before[0])
                self.reads.send(
                    target,
                    method,
                    path,
                    expect=200 if self.reads_answered else 503,
                    problem=not self.reads_answered,
                )
                # A customer asks for a delivery; the delivery service's own outage refuses it.
                customer = Customer(delivery_request(10 + index))
                self.customers.append(customer)
                self.answered_during.append(customer.post(gateway).status_code)

            with out():
                during(OUTAGE_SECONDS, probe, every=1.0)
            recovered = time.monotonic()
            # A customer answered 503 sends the same request again, with the same key.
            for customer in self.customers:
                for _ in range(20):
                    if (
                        customer.delivery_id is not None
                        or customer.post(gateway).status_code == 202
                    ):
                        break
                    time.sleep(0.5)
            accepted = [c.delivery_id for c in self.customers if c.delivery_id is not None]
            self.stages = wait_until_finished(gateway, accepted, timeout=RECOVERY_SECONDS)
            self.recovery_seconds = time.monotonic() - recovered

    def report(self, how: str) -> str:
        stages = ", ".join(
            f"{stage} {n}" for stage, n in sorted(Counter(self.stages.values()).items())
        )
        accepted = sum(1 for c in self.customers if c.delivery_id)
        lines = [
            f"Store outage: the {self.service} store ({how}) for {OUTAGE_SECONDS:g} s",
            "  answers during the outage:",
            self.liveness.line(),
            self.writes.line(),
            self.reads.line(),
            f"    {'new delivery requests (gateway)':<44} "
            + ", ".join(f"{s} x{n}" for s, n in sorted(Counter(self.answered_during).items())),
            f"  deliveries: {len(self.customers)} requested (3 before, the rest during), "
            f"{accepted} accepted, lost {len(self.customers) - accepted}; "
            f"after {self.recovery_seconds:.0f} s: {stages}",
        ]
        for probe in (self.liveness, self.writes, self.reads):
            lines.extend(f"  fault: {fault}" for fault in probe.faults[:10])
        return "\n".join(lines)

    def check(self) -> None:
        text = self.report("")
        assert not self.liveness.faults, text
        assert not self.writes.faults, text
        assert not self.reads.faults, text
        assert all(c.delivery_id for c in self.customers), text
        assert set(self.stages.values()) == {"Completed"}, text
