"""No double booking: two scheduler processes on one store, many requests at once.

Both processes are real uvicorn servers started as subprocesses on free ports, sharing one store, as
two replicas share one database in the cluster: a SQLite file, and a database on the Cosmos DB test
server (where the claim is an ETag write over HTTPS, as on Azure Cosmos DB). The requests race for
the same nearest drones from both sides.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from scheduler_harness import delivery

from scheduler_service.fleet import BASES
from servicekit.testing import free_port
from servicekit.testing_backends.cosmos import CosmosTestServer

FLEET_SIZE = 12
REQUESTS = 48

pytestmark = pytest.mark.slow


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("cosmos", marks=pytest.mark.backend)]
)
def shared_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """The settings that point both replicas at one store of the backend."""
    if request.param == "sqlite":
        yield {"SCHEDULER_STORE_URL": f"sqlite:///{tmp_path_factory.mktemp('store')}/scheduler.db"}
        return
    cosmos: CosmosTestServer = request.getfixturevalue("cosmos_server")
    database = cosmos.new_database_name()
    yield {"SCHEDULER_STORE_URL": cosmos.url(database), "SCHEDULER_COSMOS_KEY": cosmos.key}
    cosmos.drop_database(database)


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, shared_store: dict[str, str]
) -> Iterator[list[str]]:
    """The two replicas, started once per store; each test releases what it assigned."""
    tmp_path = tmp_path_factory.mktemp("replicas")
    env = {
        **os.environ,
        **shared_store,
        "SCHEDULER_FLEET_SIZE": str(FLEET_SIZE),
        "SCHEDULER_EXPEDITED_RESERVE": "0",
        "SCHEDULER_STORE_TIMEOUT_SECONDS": "10",
        "SCHEDULER_DELIVERY_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
        "SCHEDULER_LOG_LEVEL": "WARNING",
    }
    ports = [free_port(), free_port()]
    log = (tmp_path / "replicas.log").open("wb")
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "scheduler_service.app:app", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for port in ports
    ]
    try:
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        deadline = time.monotonic() + 30
        for url, process in zip(urls, processes, strict=True):
            while not _ready(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"a replica did not start:\n{(tmp_path / 'replicas.log').read_text()}"
                    )
                time.sleep(0.05)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)
        log.close()


@pytest.fixture
async def clients(
    replicas: list[str],
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with (
        httpx.AsyncClient(base_url=replicas[0], timeout=30) as one,
        httpx.AsyncClient(base_url=replicas[1], timeout=30) as other,
    ):
        try:
            yield one, other
        finally:
            fleet = (await one.get("/api/drones")).json()
            for drone in fleet:
                if drone["deliveryId"] is not None:
                    await other.delete(f"/api/dronedeliveries/{drone['deliveryId']}")


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/drones").status_code == 200
    except httpx.TransportError:
        return False


async def test_no_drone_is_ever_given_to_two_deliveries(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    one, other = clients
    pickup_time = (datetime.now(UTC) + timedelta(hours=2)).isoformat()  # nobody lands meanwhile
    bases = [(latitude, longitude) for _, latitude, longitude in BASES[:6]]

    responses = await asyncio.gather(
        *(
            (one if n % 2 else other).put(
                f"/api/dronedeliveries/d{n}",
                json=delivery(f"d{n}", near=bases[n % len(bases)], pickupTime=pickup_time),
            )
            for n in range(REQUESTS)
        )
    )
    fleet = (await one.get("/api/drones")).json()
    seen_from_the_other = {
        f"d{n}": (await other.get(f"/api/dronedeliveries/d{n}")).json().get("droneId")
        for n in range(REQUESTS)
    }

    assert Counter(r.status_code for r in responses).keys() <= {201, 503}
    assert all("retry-after" in r.headers for r in responses if r.status_code == 503)
    answered = {
        f"d{n}": r.json()["droneId"] for n, r in enumerate(responses) if r.status_code == 201
    }
    assert len(set(answered.values())) == len(answered), "a drone was given twice"
    claimed = {d["deliveryId"]: d["id"] for d in fleet if d["deliveryId"] is not None}
    assert claimed == answered, "every claim is an answered assignment and the other way round"
    assert {d: drone for d, drone in seen_from_the_other.items() if drone} == answered
    assert len(answered) >= FLEET_SIZE // 2, "the drones in range were handed out"


async def test_a_request_repeated_on_both_replicas_at_once_gets_one_drone(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    one, other = clients
    body = delivery("same", pickupTime=(datetime.now(UTC) + timedelta(hours=2)).isoformat())

    responses = await asyncio.gather(
        *((one if n % 2 else other).put("/api/dronedeliveries/same", json=body) for n in range(12))
    )
    fleet = (await other.get("/api/drones")).json()

    assert sorted(r.status_code for r in responses) == [200] * 11 + [201]
    assert len({r.json()["droneId"] for r in responses}) == 1
    assert [d["id"] for d in fleet if d["deliveryId"] == "same"] == [responses[0].json()["droneId"]]
