"""Replicas share the work: a replica that stops hands its deliveries over, and when several replicas'
sweepers find the same delivery, exactly one of them resumes it."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest
from delivery_testkit import (
    FakePackageService,
    FakeScheduler,
    delivery_request,
    event_stages,
    eventually,
    reach_stage,
    request_delivery,
)

from delivery_service.app import create_app
from delivery_service.intake import DeliveryIntake
from delivery_service.leases import Leases
from delivery_service.models import DeliveryRequest
from delivery_service.priority import IntakeFirst
from delivery_service.settings import DeliverySettings
from delivery_service.store import (
    CONTAINERS,
    DELIVERIES,
    IDEMPOTENCY_KEYS,
    DeliveryRepository,
    IdempotencyRepository,
)
from delivery_service.sweeper import Sweeper
from servicekit.stores import open_document_store
from servicekit.testing import serve_in_thread
from servicekit.testing_backends.cosmos import CosmosTestServer

HOW_MANY = 6


@pytest.fixture(params=["sqlite", pytest.param("cosmos", marks=pytest.mark.backend)])
def delivery_store(
    request: pytest.FixtureRequest, settings: DeliverySettings
) -> tuple[str, str | None]:
    """The URL and key of a store that replicas share: the settings' SQLite file, or a database on
    the Cosmos DB test server, where a claim is an ETag write over HTTPS as on Azure Cosmos DB."""
    if request.param == "sqlite":
        return settings.store_url, None
    url: str = request.getfixturevalue("cosmos_store_url")
    return url, CosmosTestServer.key


async def test_of_two_sweepers_finding_one_expired_lease_exactly_one_claims_it(
    settings: DeliverySettings, delivery_store: tuple[str, str | None]
) -> None:
    url, key = delivery_store
    store = open_document_store(url, CONTAINERS, timeout=5, key=key)
    await store.start()
    deliveries = DeliveryRepository(store.container(DELIVERIES))
    keys = IdempotencyRepository(store.container(IDEMPOTENCY_KEYS))
    # Accepted by a replica that died at once: leases of a millisecond, nobody running them.
    dead = DeliveryIntake(
        deliveries,
        keys,
        Leases("dead", 0.001),
        lambda _: None,
        IntakeFirst(lag_threshold=0),
        settings,
    )
    request = DeliveryRequest.model_validate(delivery_request())
    ids = sorted([(await dead.accept(request, None)).delivery_id for _ in range(HOW_MANY)])
    await asyncio.sleep(0.01)
    kicked: dict[str, list[str]] = {"a": [], "b": []}
    sweepers = [
        Sweeper(deliveries, Leases(name, 30), kicked[name].append, interval=1, batch_size=50)
        for name in kicked
    ]

    try:
        claims = await asyncio.gather(*(sweeper.sweep() for sweeper in sweepers))
        owners = {id: (await deliveries.get(id)).delivery.work.lease_owner for id in ids}  # type: ignore[union-attr]
    finally:
        await store.stop()

    assert sum(claims) == HOW_MANY
    assert sorted(kicked["a"] + kicked["b"]) == ids, "each delivery resumed by one replica"
    assert all(owners[id] == name for name, claimed in kicked.items() for id in claimed)


@pytest.mark.slow
async def test_a_stopping_replica_hands_over_to_others_without_duplicates(
    settings: DeliverySettings, packages: FakePackageService, scheduler: FakeScheduler
) -> None:
    in_flight: Counter[str] = Counter()
    overlaps: list[str] = []

    async def note_overlaps(delivery_id: str) -> None:
        in_flight[delivery_id] += 1
        if in_flight[delivery_id] > 1:
            overlaps.append(delivery_id)
        await asyncio.sleep(0.05)  # long enough for a second worker to show up
        in_flight[delivery_id] -= 1

    scheduler.on_put = note_overlaps
    scheduler.answer_next("PUT", 503, times=10_000, retry_after="1")  # nobody gets a drone yet
    with serve_in_thread(create_app(settings)) as second, serve_in_thread(create_app(settings)):
        with serve_in_thread(create_app(settings)) as first:
            async with httpx.AsyncClient(base_url=first) as client:
                ids = [await request_delivery(client) for _ in range(HOW_MANY)]
                await eventually(
                    lambda: scheduler.calls["PUT"] >= HOW_MANY,
                    what="every delivery asking for a drone",
                )
            registered = packages.calls["PUT"]
        # The first replica stopped and handed its leases back: the other two race for them.
        scheduler.answer_normally()

        async with httpx.AsyncClient(base_url=second) as client:
            for delivery_id in ids:
                await reach_stage(client, delivery_id, "Scheduled")
                assert await event_stages(client, delivery_id) == ["Created", "Scheduled"]

    assert overlaps == [], "no delivery was worked on by two replicas at once"
    assert registered == HOW_MANY
    assert packages.calls["PUT"] == HOW_MANY, "no package registered twice"
    assert scheduler.drones_held == HOW_MANY
    assert sum(scheduler.released.values()) == 0
