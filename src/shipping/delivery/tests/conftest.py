from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from delivery_testkit import FAST, FakePackageService, FakeScheduler

from delivery_service.app import create_app
from delivery_service.settings import DeliverySettings
from servicekit.testing import serve_in_thread


# The fake neighbours are started once per test module and reset for each test (starting and
# stopping servers is most of what a test costs); the delivery service itself is new in every test.
@pytest.fixture(scope="module")
def package_service() -> Iterator[tuple[FakePackageService, str]]:
    fake = FakePackageService()
    with serve_in_thread(fake.app()) as url:
        yield fake, url


@pytest.fixture(scope="module")
def scheduler_service() -> Iterator[tuple[FakeScheduler, str]]:
    fake = FakeScheduler()
    with serve_in_thread(fake.app()) as url:
        yield fake, url


@pytest.fixture
def packages(package_service: tuple[FakePackageService, str]) -> FakePackageService:
    package_service[0].reset()
    return package_service[0]


@pytest.fixture
def scheduler(scheduler_service: tuple[FakeScheduler, str]) -> FakeScheduler:
    scheduler_service[0].reset()
    return scheduler_service[0]


@pytest.fixture
def settings(
    tmp_path: Path,
    package_service: tuple[FakePackageService, str],
    scheduler_service: tuple[FakeScheduler, str],
    packages: FakePackageService,
    scheduler: FakeScheduler,
) -> DeliverySettings:
    return DeliverySettings(
        store_url=f"sqlite:///{tmp_path}/delivery.db",
        package_service_url=package_service[1],
        scheduler_service_url=scheduler_service[1],
        **FAST,
    )


@pytest.fixture
def delivery_service_url(settings: DeliverySettings) -> Iterator[str]:
    with serve_in_thread(create_app(settings)) as url:
        yield url


@pytest.fixture
async def client(delivery_service_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=delivery_service_url, timeout=30) as client:
        yield client
