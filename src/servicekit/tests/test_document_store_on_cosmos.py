"""The Cosmos DB backend under faults: throttling, transient errors, lost responses, outages.

The contract suite (test_document_store_contract.py) runs on Cosmos DB too; these tests are about what
only a remote store does, against the local test server over real HTTPS.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from servicekit.stores import open_document_store
from servicekit.stores.documents import ContainerSpec, DocumentStore
from servicekit.stores.errors import PreconditionFailedError, StoreUnavailableError
from servicekit.testing import free_port
from servicekit.testing_backends.cosmos import CosmosTestServer

pytestmark = pytest.mark.backend

CONTAINERS = (ContainerSpec("drones", partition_key="id"),)


@pytest.fixture
async def drones_store(cosmos_store_url: str) -> AsyncIterator[DocumentStore]:
    store = open_document_store(cosmos_store_url, CONTAINERS, timeout=5.0, key=CosmosTestServer.key)
    await store.start()
    await store.wait_ready()
    try:
        yield store
    finally:
        await store.stop()


async def test_throttled_calls_are_retried_after_the_time_cosmos_asks_for(
    drones_store: DocumentStore, cosmos_server: CosmosTestServer
) -> None:
    drones = drones_store.container("drones")
    cosmos_server.inject_faults(429, 3, retry_after_ms=150)

    started = time.monotonic()
    await drones.create({"id": "d1", "status": "Free"})

    assert time.monotonic() - started >= 0.45, "three waits of 150 ms"
    assert (await drones.get("d1", "d1")) is not None


async def test_throttling_longer_than_the_time_limit_answers_unavailable_at_once(
    cosmos_store_url: str, cosmos_server: CosmosTestServer
) -> None:
    async with _store(cosmos_store_url, timeout=1.0) as store:
        cosmos_server.inject_faults(429, 1, retry_after_ms=4500)

        started = time.monotonic()
        with pytest.raises(StoreUnavailableError) as raised:
            await store.container("drones").get("d1", "d1")

    assert time.monotonic() - started < 0.5, "no point waiting past the time limit"
    assert raised.value.retry_after_seconds == 5, "the caller learns when to come back"


@pytest.mark.parametrize("status", [500, 503, 408])
async def test_transient_errors_are_retried(
    drones_store: DocumentStore, cosmos_server: CosmosTestServer, status: int
) -> None:
    drones = drones_store.container("drones")
    await drones.create({"id": "d1", "status": "Free"})
    cosmos_server.inject_faults(status, 2)

    found = await drones.get("d1", "d1")

    assert found is not None
    assert found.body["status"] == "Free"


async def test_errors_that_outlast_the_time_limit_answer_unavailable(
    cosmos_store_url: str, cosmos_server: CosmosTestServer
) -> None:
    async with _store(cosmos_store_url, timeout=1.0) as store:
        cosmos_server.inject_faults(503, 10_000)
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailableError):
                await store.container("drones").create({"id": "d1"})
            assert time.monotonic() - started < 1.5
        finally:
            cosmos_server.inject_faults(503, 0)


async def test_a_write_whose_answer_was_lost_is_not_reported_as_a_conflict(
    drones_store: DocumentStore, cosmos_server: CosmosTestServer
) -> None:
    drones = drones_store.container("drones")
    created = await drones.create({"id": "d1", "status": "Free"})

    cosmos_server.lose_responses(1)
    claimed = await drones.replace({"id": "d1", "status": "Assigned"}, etag=created.etag)
    cosmos_server.lose_responses(1)
    other = await drones.create({"id": "d2", "status": "Free"})

    stored = await drones.get("d1", "d1")
    assert stored is not None
    assert stored.body["status"] == "Assigned"
    assert stored.etag == claimed.etag
    assert other.body == {"id": "d2", "status": "Free"}


async def test_a_conflicting_write_after_a_lost_answer_is_still_a_conflict(
    drones_store: DocumentStore, cosmos_server: CosmosTestServer
) -> None:
    drones = drones_store.container("drones")
    created = await drones.create({"id": "d1", "status": "Free"})
    await drones.replace({"id": "d1", "status": "Assigned", "deliveryId": "a"}, etag=created.etag)

    cosmos_server.lose_responses(1)
    with pytest.raises(PreconditionFailedError):
        await drones.replace(
            {"id": "d1", "status": "Assigned", "deliveryId": "b"}, etag=created.etag
        )

    assert (await drones.get("d1", "d1")).body["deliveryId"] == "a"  # type: ignore[union-attr]


async def test_calls_during_an_outage_succeed_once_the_server_is_back(
    drones_store: DocumentStore, cosmos_server: CosmosTestServer
) -> None:
    drones = drones_store.container("drones")
    await drones.create({"id": "before", "status": "Free"})

    cosmos_server.outage(0.8)
    started = time.monotonic()
    written = await asyncio.gather(
        *(drones.create({"id": f"during-{i}", "status": "Free"}) for i in range(10))
    )

    assert time.monotonic() - started >= 0.5, "the calls did meet the outage"
    assert len(written) == 10
    assert await drones.count() == 11


async def test_an_unreachable_account_starts_and_answers_unavailable_in_time() -> None:
    url = f"cosmos://127.0.0.1:{free_port()}/nothing?verify=false"

    async with _store(url, timeout=0.5, ready=False) as store:  # start() does not wait
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            await store.container("drones").get("d1", "d1")

    assert time.monotonic() - started < 1.0


def _store(url: str, *, timeout: float, ready: bool = True) -> _StartedStore:
    store = open_document_store(url, CONTAINERS, timeout=timeout, key=CosmosTestServer.key)
    return _StartedStore(store, ready)


class _StartedStore:
    def __init__(self, store: DocumentStore, ready: bool) -> None:
        self._store = store
        self._ready = ready

    async def __aenter__(self) -> DocumentStore:
        await self._store.start()
        if self._ready:
            await self._store.wait_ready()
        return self._store

    async def __aexit__(self, *exc_info: object) -> None:
        await self._store.stop()
