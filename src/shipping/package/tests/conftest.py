from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from package_service.app import create_app
from package_service.settings import PackageSettings
from servicekit.testing import serve_in_thread


@pytest.fixture
def package_service_url(tmp_path: Path) -> Iterator[str]:
    settings = PackageSettings(store_url=f"sqlite:///{tmp_path}/package.db", max_weight_kg=25)
    with serve_in_thread(create_app(settings)) as url:
        yield url


@pytest.fixture
async def packages(package_service_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=package_service_url) as client:
        yield client
