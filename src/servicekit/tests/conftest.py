"""Store backends for the contract suites: every backend must pass the same tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from servicekit.stores import open_document_store
from servicekit.stores.documents import ContainerSpec, DocumentStore

CONTAINERS = (
    ContainerSpec("drones", partition_key="id", indexed=("status", "payload")),
    ContainerSpec("flights", partition_key="ownerId", indexed=("month",)),
)


def _document_store_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/documents-{uuid.uuid4().hex}.db"
    raise AssertionError(backend)


@pytest.fixture(params=["sqlite"])
async def document_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[DocumentStore]:
    store = open_document_store(
        _document_store_url(request.param, tmp_path), CONTAINERS, timeout=5.0
    )
    await store.start()
    await store.wait_ready()
    try:
        yield store
    finally:
        await store.stop()
