from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from scheduler_harness import (
    DeliveryReceiver,
    scheduler_client,
    scheduler_settings,
    serve_scheduler,
)

from servicekit.testing import serve_in_thread


@pytest.fixture
async def scheduler(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A scheduler of its own with the default fleet of 20, flying in real time (so that nothing
    moves much during a test)."""
    async with scheduler_client(tmp_path) as client:
        yield client


@pytest.fixture(scope="module")
def shared_scheduler_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_scheduler(scheduler_settings(tmp_path_factory.mktemp("shared"))) as url:
        yield url


@pytest.fixture
async def shared_scheduler(shared_scheduler_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A scheduler the tests of a module share: for tests whose requests change nothing."""
    async with httpx.AsyncClient(base_url=shared_scheduler_url) as client:
        yield client


@pytest.fixture
def receiver() -> Iterator[tuple[str, DeliveryReceiver]]:
    """A stand-in for the delivery service, and its base URL."""
    receiver = DeliveryReceiver()
    with serve_in_thread(receiver.app()) as url:
        yield url, receiver
