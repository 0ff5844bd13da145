"""The package service: `uvicorn package_service.app:app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI

from package_service import api
from package_service.settings import PackageSettings
from package_service.store import SCHEMA, PackageRepository
from servicekit import create_service_app
from servicekit.stores.relational import RelationalStore


def create_app(settings: PackageSettings | None = None) -> FastAPI:
    settings = settings or PackageSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with RelationalStore(
            settings.store_url, SCHEMA, timeout=settings.store_timeout_seconds
        ) as db:
            app.state.packages = PackageRepository(db)
            yield

    return create_service_app(
        settings,
        title="Drone Delivery package service",
        version=version("package-service"),
        routers=[api.router],
        lifespan=lifespan,
    )


app = create_app()
