"""`add_routes`: a router's routes declared on the app itself lose nothing `include_router` keeps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException

from servicekit.routing import add_routes


async def caller_is_known(x_caller: Annotated[str | None, Header()] = None) -> None:
    if x_caller != "dispatcher":
        raise HTTPException(403)


async def fleet_size() -> int:
    return 20


FleetSize = Annotated[int, Depends(fleet_size)]

drones = APIRouter(
    prefix="/drones",
    tags=["drones"],
    dependencies=[Depends(caller_is_known)],
    responses={403: {"description": "Not a known caller"}},
)


@drones.get("/count")
async def count(size: FleetSize) -> dict[str, int]:
    """How many drones the fleet has."""
    return {"count": size}


@drones.get("/{id}", responses={404: {"description": "No such drone"}}, status_code=200)
async def drone(id: str) -> dict[str, str]:
    return {"id": id}


@drones.put("/{id}", status_code=204, include_in_schema=False)
async def replace(id: str) -> None:
    """Internal: hidden from the document."""


def _app_with(attach: Callable[[FastAPI, APIRouter], None]) -> FastAPI:
    app = FastAPI(title="fleet")
    attach(app, drones)
    return app


DISPATCHER = {"X-Caller": "dispatcher"}


def _client(app: FastAPI, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://fleet", headers=headers
    )


def test_the_api_is_documented_as_if_the_router_had_been_included() -> None:
    assert _app_with(add_routes).openapi() == _app_with(FastAPI.include_router).openapi()


async def test_the_routers_own_dependencies_still_guard_its_routes() -> None:
    async with _client(_app_with(add_routes)) as client:
        assert (await client.get("/drones/count")).status_code == 403
        answer = await client.get("/drones/count", headers=DISPATCHER)
        assert answer.json() == {"count": 20}


async def test_routes_keep_their_order_so_a_concrete_path_still_comes_first() -> None:
    async with _client(_app_with(add_routes), DISPATCHER) as client:
        assert (await client.get("/drones/count")).json() == {"count": 20}
        assert (await client.get("/drones/d-7")).json() == {"id": "d-7"}


async def test_the_apps_dependency_overrides_reach_the_routes() -> None:
    app = _app_with(add_routes)
    app.dependency_overrides[fleet_size] = lambda: 3
    async with _client(app, DISPATCHER) as client:
        assert (await client.get("/drones/count")).json() == {"count": 3}
