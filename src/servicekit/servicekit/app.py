"""One call that turns a service's routers into a service: `create_service_app`.

It wires what every service has (settings, JSON logs, telemetry, request ids, problem+json errors,
health probes, draining on SIGTERM) so a service's own `app.py` only says what is its own: its routers and the
resources its lifespan opens.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi

from servicekit import health
from servicekit.logs import configure_logging
from servicekit.problems import document_problems, install_problem_handlers
from servicekit.requests import RequestContextMiddleware
from servicekit.routing import ConcretePathsFirst, add_routes, documented_paths
from servicekit.settings import ServiceSettings, settings_summary
from servicekit.telemetry import configure_telemetry

log = logging.getLogger(__name__)

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    version: str,
    routers: Sequence[APIRouter],
    lifespan: Lifespan | None = None,
    description: str = "",
) -> FastAPI:
    """Build a service: its routers plus the defaults every service shares.

    `lifespan` opens what the service needs (stores, clients) and puts it on `app.state`; the service
    is ready only once it has been entered.
    """
    configure_logging(settings.service_name, settings.log_level)
    telemetry = configure_telemetry(settings.service_name, version, settings.environment)
    lifecycle = health.Lifecycle()

    @asynccontextmanager
    async def lifespan_with_defaults(app: FastAPI) -> AsyncIterator[None]:
        log.info("%s %s starting", settings.service_name, version, extra=settings_summary(settings))
        async with lifespan(app) if lifespan is not None else _nothing():
            # Built now rather than by the first request, which would wait the 100 ms it takes.
            documented_paths(app)
            with _startup_objects_frozen():
                lifecycle.started = True
                lifecycle.drain_on_sigterm(settings.drain_seconds)
                yield
                lifecycle.started = False

    app = FastAPI(
        title=title,
        version=version,
        description=description,
        lifespan=lifespan_with_defaults,
        # servicekit's telemetry instruments the app as it does the clients and the stores (one
        # mechanism); FastAPI's own would also look up the providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.lifecycle = lifecycle
    install_problem_handlers(app)
    app.add_middleware(ConcretePathsFirst)
    app.add_middleware(RequestContextMiddleware)
    telemetry.instrument_app(app)
    # The service's routes first: routes are matched in order, and they are what is called most.
    for router in (*routers, health.router):
        add_routes(app, router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(
                get_openapi(
                    title=title, version=version, description=description, routes=app.routes
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


@asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


@contextmanager
def _startup_objects_frozen() -> Iterator[None]:
    """Keep what start-up built (modules, models, routes: 80,000 objects) out of the collector's reach.

    A full collection walks every object it tracks, on the event loop, and every request waits
    meanwhile: walking start-up's objects took 40-60 ms, now and then, in the middle of a load test.
    Frozen, they are walked no more; what requests make is collected as before. Stopping gives them
    back to the collector, for processes (tests) that start more than one service.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
