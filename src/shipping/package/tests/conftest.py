"""The package API tests run on every store the service supports: SQLite (the embedded default) and,
through psqlODBC, PostgreSQL standing in for Azure SQL (see servicekit.testing_backends)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from package_service.app import create_app
from package_service.settings import PackageSettings
from servicekit.testing import serve_in_thread


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.backend)])
def package_settings(request: pytest.FixtureRequest, tmp_path: Path) -> PackageSettings:
    if request.param == "sqlite":
        return PackageSettings(store_url=f"sqlite:///{tmp_path}/package.db", max_weight_kg=25)
    # A server over the network, on a machine shared with other test runs: more time per call.
    return PackageSettings(
        store_url=request.getfixturevalue("odbc_store_url"),
        store_timeout_seconds=5,
        max_weight_kg=25,
    )


@pytest.fixture
def package_service_url(package_settings: PackageSettings) -> Iterator[str]:
    with serve_in_thread(create_app(package_settings)) as url:
        yield url


@pytest.fixture
async def packages(package_service_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=package_service_url) as client:
        yield client
