"""Store backends for the contract suites: every backend must pass the same tests.

SQLite always runs. Cosmos DB (the local test server) and PostgreSQL (through psqlODBC) run where
their servers can (servicekit.testing_backends.plugin): elsewhere they are skipped with the reason, or
fail under CI / REQUIRE_BACKENDS=1.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from servicekit.stores import open_document_store
from servicekit.stores.documents import ContainerSpec, DocumentStore
from servicekit.testing_backends.cosmos import CosmosTestServer

CONTAINERS = (
    ContainerSpec("drones", partition_key="id", indexed=("status", "payload")),
    ContainerSpec("flights", partition_key="ownerId", indexed=("month",)),
)

DOCUMENT_BACKENDS = ["sqlite", pytest.param("cosmos", marks=pytest.mark.backend)]
RELATIONAL_BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.backend)]


@pytest.fixture(params=DOCUMENT_BACKENDS)
async def document_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[DocumentStore]:
    key = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/documents-{uuid.uuid4().hex}.db"
    else:
        url = request.getfixturevalue("cosmos_store_url")
        key = CosmosTestServer.key
    store = open_document_store(url, CONTAINERS, timeout=5.0, key=key)
    await store.start()
    await store.wait_ready()
    try:
        yield store
    finally:
        await store.stop()


@pytest.fixture(params=RELATIONAL_BACKENDS)
def relational_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each relational backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/relational-{uuid.uuid4().hex}.db"
    url: str = request.getfixturevalue("odbc_store_url")
    return url
