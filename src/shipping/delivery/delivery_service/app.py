"""The delivery service: `uvicorn delivery_service.app:app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI

from delivery_service import api
from delivery_service.changes import DeliveryChanges
from delivery_service.intake import DeliveryIntake
from delivery_service.leases import Leases, replica_name
from delivery_service.neighbours import PackageService, SchedulerService
from delivery_service.priority import IntakeFirst
from delivery_service.runner import Runner
from delivery_service.settings import DeliverySettings
from delivery_service.store import (
    CONTAINERS,
    DELIVERIES,
    EVENTS,
    IDEMPOTENCY_KEYS,
    NOTIFY_ME_REQUESTS,
    DeliveryRepository,
    EventRepository,
    IdempotencyRepository,
    NotifyMeRepository,
)
from delivery_service.sweeper import Sweeper
from delivery_service.tracking import DeliveryTracking
from delivery_service.workflow import Workflow
from servicekit import ServiceClient, create_service_app
from servicekit.stores import service_document_store


def create_app(settings: DeliverySettings | None = None) -> FastAPI:
    settings = settings or DeliverySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            store = service_document_store(settings, CONTAINERS)
            await store.start()
            stack.push_async_callback(store.stop)
            policy = settings.call_policy()
            package_client = ServiceClient("package", settings.package_service_url, policy)
            scheduler_client = ServiceClient("scheduler", settings.scheduler_service_url, policy)
            stack.push_async_callback(package_client.aclose)
            stack.push_async_callback(scheduler_client.aclose)

            deliveries = DeliveryRepository(store.container(DELIVERIES))
            events = EventRepository(store.container(EVENTS))
            scheduler = SchedulerService(scheduler_client)
            leases = Leases(replica_name(), settings.lease_seconds)
            workflow = Workflow(
                deliveries, events, PackageService(package_client), scheduler, leases, settings
            )
            intake_first = IntakeFirst(lag_threshold=settings.intake_first_lag_seconds)
            intake_first.start()
            stack.push_async_callback(intake_first.stop)
            runner = Runner(
                workflow,
                deliveries,
                leases,
                max_active=settings.max_active_workflows,
                intake_first=intake_first,
            )
            stack.push_async_callback(runner.stop)
            sweeper = Sweeper(
                deliveries,
                leases,
                runner.kick,
                interval=settings.sweep_interval_seconds,
                batch_size=settings.sweep_batch_size,
            )
            sweeper.start()
            stack.push_async_callback(sweeper.stop)

            app.state.deliveries = deliveries
            app.state.notify_me = NotifyMeRepository(store.container(NOTIFY_ME_REQUESTS))
            app.state.intake = DeliveryIntake(
                deliveries,
                IdempotencyRepository(store.container(IDEMPOTENCY_KEYS)),
                leases,
                runner.kick,
                intake_first,
                settings,
            )
            app.state.changes = DeliveryChanges(deliveries, leases, runner.kick, settings)
            app.state.tracking = DeliveryTracking(
                deliveries,
                events,
                scheduler,
                live_location_timeout=settings.live_location_timeout_seconds,
            )
            yield

    return create_service_app(
        settings,
        title="Drone Delivery delivery service",
        version=version("delivery-service"),
        routers=[api.requests, api.deliveries, api.tracking],
        lifespan=lifespan,
    )


app = create_app()
