"""A service's store out for a while (OUTAGE_SECONDS: 12 s by default, 15 s in `make chaos`): the
service stays alive, answers what needs the store with a quick 503 and Retry-After instead of
hanging, and afterwards everything goes on by itself; no delivery accepted before or during the
outage is lost.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
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

OUTAGE_SECONDS = float(os.environ.get("OUTAGE_SECONDS", "12"))
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
@pytest.mark.parametrize(
    "services",
    [("delivery",), ("package", "scheduler")],
    ids=["delivery", "package-and-scheduler"],
)
def test_sqlite_stores_held_locked_are_answered_503_and_recovered_from(
    outage_stack: Stack, record_report: Callable[[str, str], None], services: tuple[str, ...]
) -> None:
    # The delivery service's own store, then both of its neighbours' stores at once.
    outage = Outage(outage_stack, services, reads_answered=True)

    outage.run(
        lambda: _all(exclusive_lock(outage_stack.data_dir / f"{name}.db") for name in services)
    )

    record_report(f"outage-{'-'.join(services)}-sqlite", outage.report("SQLite, BEGIN EXCLUSIVE"))
    outage.check()


@contextmanager
def _all(managers: Iterable[AbstractContextManager[None]]) -> Iterator[None]:
    with ExitStack() as stack:
        for manager in managers:
            stack.enter_context(manager)
        yield


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
        outage = Outage(stack, ("package",), reads_answered=False)

        outage.run(lambda: postgres_server.refusing_connections(database))

        record_report(
            "outage-package-postgresql", outage.report("PostgreSQL, refusing connections")
        )
    outage.check()


class Outage:
    """One outage: deliveries before it, probes and new deliveries during it, recovery after it."""

    def __init__(self, stack: Stack, services: tuple[str, ...], *, reads_answered: bool) -> None:
        self.stack = stack
        self.services = services
        self.reads_answered = reads_answered
        self.probes: list[tuple[str, Probe, Probe, Probe]] = [
            (
                name,
                Probe(f"GET /livez, /readyz ({name})"),
                Probe(REQUESTS[name].write_name),
                Probe(REQUESTS[name].read_name),
            )
            for name in services
        ]
        self.customers: list[Customer] = []
        self.answered_during: list[int] = []
        self.stages: dict[str, str] = {}
        self.recovery_seconds = 0.0

    def run(self, out: Callable[[], AbstractContextManager[Any]]) -> None:
        with ExitStack() as clients:
            gateway = clients.enter_context(
                httpx.Client(base_url=self.stack.gateway_url, timeout=10)
            )
            direct = {
                name: clients.enter_context(
                    httpx.Client(base_url=self.stack.service_url(name), timeout=10)
                )
                for name in self.services
            }
            # In flight when the outage starts: picked up a few seconds later.
            before = [Customer(delivery_request(i, later_seconds=4)) for i in range(3)]
            for customer in before:
                assert customer.post(gateway).status_code == 202
            self.customers += before

            def probe(index: int) -> None:
                for name, liveness, writes, reads in self.probes:
                    requests = REQUESTS[name]
                    target = gateway if requests.through_gateway else direct[name]
                    liveness.send(direct[name], "GET", "/livez", expect=200, problem=False)
                    liveness.send(direct[name], "GET", "/readyz", expect=200, problem=False)
                    method, path, body = requests.write(index)
                    writes.send(target, method, path, expect=503, json=body)
                    method, path = requests.read(before[0])
                    reads.send(
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
        during = ", ".join(f"{s} x{n}" for s, n in sorted(Counter(self.answered_during).items()))
        lines = [
            f"Store outage: the {' and '.join(self.services)} store ({how}) for {OUTAGE_SECONDS:g} s",
            "  answers during the outage:",
        ]
        for _, *probes in self.probes:
            lines.extend(probe.line() for probe in probes)
        lines += [
            f"    {'new delivery requests (gateway)':<44} {during}",
            f"  deliveries: {len(self.customers)} requested (3 before, the rest during), "
            f"{accepted} accepted, lost {len(self.customers) - accepted}; "
            f"{self.recovery_seconds:.0f} s after it: {stages}",
        ]
        for _, *probes in self.probes:
            for probe in probes:
                lines.extend(f"  fault: {fault}" for fault in probe.faults[:10])
        return "\n".join(lines)

    def check(self) -> None:
        text = self.report("")
        for _, *probes in self.probes:
            for probe in probes:
                assert not probe.faults, text
        assert all(c.delivery_id for c in self.customers), text
        assert set(self.stages.values()) == {"Completed"}, text
