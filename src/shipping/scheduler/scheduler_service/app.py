"""The scheduler service: `uvicorn scheduler_service.app:app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI

from scheduler_service import api
from scheduler_service.background import run_background, running
from scheduler_service.dispatch import Dispatcher
from scheduler_service.fleet import Fleet
from scheduler_service.fleet_gauge import FleetGauge
from scheduler_service.outbox import DELIVERY_POLICY, Outbox
from scheduler_service.settings import SchedulerSettings
from scheduler_service.simulation import FlightSimulator
from scheduler_service.store import open_scheduler_store
from servicekit import ServiceClient, create_service_app
from servicekit.telemetry import current_telemetry


def create_app(settings: SchedulerSettings | None = None) -> FastAPI:
    settings = settings or SchedulerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            open_scheduler_store(settings) as store,
            ServiceClient(
                "delivery", settings.delivery_service_url, DELIVERY_POLICY
            ) as delivery_service,
        ):
            fleet = Fleet(store.drones, settings.fleet_size)
            app.state.store = store
            app.state.fleet = fleet
            app.state.dispatcher = Dispatcher(store, fleet, settings)
            outbox = Outbox(
                store.notifications,
                delivery_service,
                max_backoff_seconds=settings.notification_max_backoff_seconds,
            )
            simulator = FlightSimulator(store, settings)
            # The fleet is counted for the gauge only where metrics are exported.
            fleet_gauge = FleetGauge(store.drones) if current_telemetry().enabled else None
            async with running(
                run_background(
                    fleet,
                    simulator,
                    outbox,
                    tick_seconds=settings.tick_seconds,
                    fleet_gauge=fleet_gauge,
                )
            ):
                yield

    return create_service_app(
        settings,
        title="Drone Delivery scheduler service",
        version=version("scheduler-service"),
        routers=[api.drone_deliveries, api.drones],
        lifespan=lifespan,
    )


app = create_app()
