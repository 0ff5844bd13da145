"""The system on its production store backends, chosen by configuration only.

Delivery and scheduler keep their data on the Cosmos DB test server (a fresh database each), package
on PostgreSQL through psqlODBC, as they would on Azure Cosmos DB and Azure SQL: only the services'
settings differ from the embedded run. The development environment (`<PREFIX>ENVIRONMENT`) is what
lets them accept the test server's self-signed certificate (`verify=false`) and the emulator's public
key; a deployed environment would refuse both.

The lifecycle scenarios are the ones of test_delivery_lifecycle, run again here on this module's
stack; the tests after them are about what only a remote store does: throttling, lost answers, an
outage, and conditional writes that lose a race.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import ANY

import httpx
import pytest
import test_delivery_lifecycle as lifecycle
from e2e_support import (
    COMPLETED_EVENTS,
    TERMINAL,
    delivery_request,
    eventually,
    stack_settings,
    wait_for_stage,
)

from devstack.stack import Stack
from servicekit.testing_backends.cosmos import CosmosTestServer
from servicekit.testing_backends.postgres import PostgresTestServer

pytestmark = pytest.mark.backend

SERVICES = ("DELIVERY", "SCHEDULER", "PACKAGE")
OUTAGE_SECONDS = 3.0
KM_PER_MILE = 1.609344
RACING = 6


@pytest.fixture(scope="module")
def package_database(postgres_server: PostgresTestServer) -> Iterator[str]:
    name = postgres_server.create_database()
    yield name
    postgres_server.drop_database(name)


@pytest.fixture(scope="module")
def production_stores(
    cosmos_server: CosmosTestServer, postgres_server: PostgresTestServer, package_database: str
) -> Iterator[dict[str, str]]:
    """The services' store settings: a Cosmos database each for delivery and scheduler (dropped
    afterwards), the PostgreSQL database for package."""
    delivery_db, scheduler_db = cosmos_server.new_database_name(), cosmos_server.new_database_name()
    yield {
        **{f"{service}_ENVIRONMENT": "development" for service in SERVICES},
        "DELIVERY_STORE_URL": cosmos_server.url(delivery_db),
        "DELIVERY_COSMOS_KEY": cosmos_server.key,
        "SCHEDULER_STORE_URL": cosmos_server.url(scheduler_db),
        "SCHEDULER_COSMOS_KEY": cosmos_server.key,
        "PACKAGE_STORE_URL": postgres_server.url(package_database),
    }
    for database in (delivery_db, scheduler_db):
        cosmos_server.drop_database(database)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, production_stores: dict[str, str]
) -> Iterator[Stack]:
    """This module's system (the `gateway` and `internal` fixtures of conftest talk to it)."""
    settings = stack_settings(tmp_path_factory.mktemp("production-stores"), production_stores)
    with Stack(settings) as running:
        yield running


# The lifecycle on these stores: the same tests, collected again with this module's stack.
test_a_delivery_flies_to_completed_with_real_status_and_events = (
    lifecycle.test_a_delivery_flies_to_completed_with_real_status_and_events
)
test_a_delivery_no_drone_can_fly_fails_and_holds_nothing = (
    lifecycle.test_a_delivery_no_drone_can_fly_fails_and_holds_nothing
)
test_a_cancelled_delivery_releases_its_drone = (
    lifecycle.test_a_cancelled_delivery_releases_its_drone
)
test_a_rescheduled_delivery_is_planned_again = (
    lifecycle.test_a_rescheduled_delivery_is_planned_again
)


def test_a_delivery_scheduled_through_throttling_lost_answers_and_outages_completes(
    gateway: httpx.Client,
    internal: Callable[[str], httpx.Client],
    cosmos_server: CosmosTestServer,
    postgres_server: PostgresTestServer,
    package_database: str,
) -> None:
    accepted = gateway.post("/api/deliveryrequests", json=delivery_request(ownerId="faults"))
    assert accepted.status_code == 202, accepted.text
    delivery_id = accepted.json()["deliveryId"]

    # As the workflow sets out, PostgreSQL ends the package service's connections, and the Cosmos
    # DB server that delivery and scheduler share throttles, carries out some requests without
    # answering them, and goes away for a while.
    assert postgres_server.terminate_connections(package_database) >= 1
    cosmos_server.inject_faults(429, 12, retry_after_ms=40)
    cosmos_server.lose_responses(4)
    cosmos_server.outage(OUTAGE_SECONDS)
    back = time.monotonic() + OUTAGE_SECONDS
    during_the_outage = gateway.get(f"/api/deliveries/{delivery_id}")
    time.sleep(max(0.0, back - time.monotonic()))

    assert during_the_outage.status_code == 503, during_the_outage.text
    assert during_the_outage.headers["content-type"] == "application/problem+json"
    assert int(during_the_outage.headers["retry-after"]) >= 1
    completed = wait_for_stage(gateway, delivery_id, TERMINAL, retry_unavailable=True)
    assert completed["stage"] == "Completed", completed
    events = gateway.get(f"/api/deliveries/{delivery_id}/events").json()
    assert [event["stage"] for event in events] == COMPLETED_EVENTS, (
        "every event once, in order: no retry wrote one twice or lost one"
    )
    # The flight is on the owner's utilization once: its record written exactly once, too.
    scheduler = internal("scheduler")
    flown_km = scheduler.get(f"/api/dronedeliveries/{delivery_id}").json()["distanceKm"]
    completed_at = datetime.fromisoformat(events[-1]["time"])
    month: dict[str, str | int] = {
        "ownerId": "faults",
        "year": completed_at.year,
        "month": completed_at.month,
    }
    eventually(
        lambda: (
            scheduler.get("/api/dronedeliveries/utilization", params=month).json()
            == {
                "traveledMiles": pytest.approx(flown_km / KM_PER_MILE, abs=0.002),
                "assignedHours": ANY,
            }
        ),
        "the flight on the owner's utilization",
        timeout=30,
    )


def test_cancels_and_reschedules_racing_the_workflow_end_cancelled_holding_nothing(
    gateway: httpx.Client, internal: Callable[[str], httpx.Client]
) -> None:
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    uptown = {"latitude": 47.6553, "longitude": -122.3035}
    ids = [
        gateway.post(
            "/api/deliveryrequests", json=delivery_request(ownerId=f"racing-{n}", pickupTime=later)
        ).json()["deliveryId"]
        for n in range(RACING)
    ]

    # While each delivery's workflow schedules it, a cancel and a reschedule arrive at once: three
    # writers of one document, each on the ETag it read. A loser decides again on what it finds.
    with ThreadPoolExecutor(max_workers=2 * RACING) as pool:
        cancels = pool.map(lambda id: gateway.delete(f"/api/deliveryrequests/{id}"), ids)
        reschedules = pool.map(
            lambda id: gateway.patch(
                f"/api/deliveryrequests/{id}", json={"dropOffLocation": uptown}
            ),
            ids,
        )
        answers = [
            (c.status_code, r.status_code) for c, r in zip(cancels, reschedules, strict=True)
        ]

    scheduler, packages = internal("scheduler"), internal("package")
    for delivery_id, (cancelled, rescheduled) in zip(ids, answers, strict=True):
        assert cancelled == 204
        assert rescheduled in (200, 202, 409), "a reschedule that lost the race is refused"
        delivery = gateway.get(f"/api/deliveries/{delivery_id}").json()
        assert delivery["stage"] == "Cancelled", delivery
        stages = [e["stage"] for e in gateway.get(f"/api/deliveries/{delivery_id}/events").json()]
        assert stages[0] == "Created"
        assert stages[-1] == "Cancelled", stages
        assert stages.count("Cancelled") == 1

        def released(delivery_id: str = delivery_id, package: str = delivery["packageId"]) -> bool:
            drones: list[dict[str, Any]] = scheduler.get("/api/drones").json()
            return (
                all(drone["deliveryId"] != delivery_id for drone in drones)
                and scheduler.get(f"/api/dronedeliveries/{delivery_id}").status_code == 404
                and packages.get(f"/api/packages/{package}").status_code == 404
            )

        eventually(released, f"delivery {delivery_id}'s drone and package released", timeout=30)
