"""The scheduler's HTTP API (internal: only the delivery service and operators call it)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response, status
from pydantic import BaseModel, ValidationError

from scheduler_service.dispatch import AssignmentNotFoundError, Dispatcher, assignment_view
from scheduler_service.drones import PackageAboardError, location_of, status_of
from scheduler_service.fleet import Fleet
from scheduler_service.flights import utc_now
from scheduler_service.models import (
    Assignment,
    AssignmentRequest,
    AssignmentStatus,
    Drone,
    Location,
    Utilization,
    UtilizationQuery,
)
from scheduler_service.planning import NoDroneFreeError, UndeliverableError
from scheduler_service.records import DroneRecord
from scheduler_service.settings import SchedulerSettings
from scheduler_service.store import SchedulerStore
from servicekit.models import IDENTIFIER_PATTERN
from servicekit.problems import Problem, invalid_field, problem_responses


# Dependencies are `async def` although most do not await: FastAPI runs a plain `def` dependency on a
# worker thread, a hand-off per request that costs more than the lookup itself.
async def _dispatcher(request: Request) -> Dispatcher:
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


async def _store(request: Request) -> SchedulerStore:
    store: SchedulerStore = request.app.state.store
    return store


async def _seeded_store(request: Request) -> SchedulerStore:
    fleet: Fleet = request.app.state.fleet
    settings: SchedulerSettings = request.app.state.settings
    await fleet.wait_seeded(settings.store_timeout_seconds)
    return await _store(request)


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The OpenAPI query parameters of a model's fields (by alias), required as the model says."""
    schema = model.model_json_schema(by_alias=True)
    required = set(schema.get("required", ()))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": {k: v for k, v in field.items() if k != "title"},
        }
        for name, field in schema["properties"].items()
    ]


Dispatch = Annotated[Dispatcher, Depends(_dispatcher)]
Store = Annotated[SchedulerStore, Depends(_store)]
SeededStore = Annotated[SchedulerStore, Depends(_seeded_store)]
DeliveryId = Annotated[
    str, Path(alias="deliveryId", pattern=IDENTIFIER_PATTERN, description="The delivery's id.")
]
DroneId = Annotated[str, Path(pattern=IDENTIFIER_PATTERN, description="The drone's id.")]

PACKAGE_ABOARD = "The drone has picked the package up; the delivery can no longer change."

drone_deliveries = APIRouter(prefix="/api/dronedeliveries", tags=["drone deliveries"])
drones = APIRouter(prefix="/api/drones", tags=["drones"])


# Declared before the /{deliveryId} routes, which would otherwise take "utilization" for an id.
@drone_deliveries.get(
    "/utilization",
    response_model=Utilization,
    responses=problem_responses(400),
    openapi_extra={"parameters": _query_parameters(UtilizationQuery)},
)
async def utilization(request: Request, store: Store) -> Utilization:
    """Miles flown and flight hours of an owner's deliveries completed in a month (UTC).

    Missing or invalid parameters are a 400, as the original service answered: the route checks
    the query itself (FastAPI would answer 422), and the document describes it from the same model.
    """
    try:
        query = UtilizationQuery.model_validate(dict(request.query_params))
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        raise Problem(400, f"Invalid query: {reasons}.", kind="invalid-query") from None
    flights = await store.utilization.query(
        ("year", "=", query.year), ("month", "=", query.month), partition=query.owner_id
    )
    return Utilization(
        traveled_miles=round(sum(found.record.traveled_miles for found in flights), 3),
        assigned_hours=round(sum(found.record.assigned_hours for found in flights), 4),
    )


@drone_deliveries.put(
    "/{deliveryId}",
    status_code=status.HTTP_201_CREATED,
    response_model=Assignment,
    responses={
        200: {"description": "The same request again, or a changed one planned again"},
        **problem_responses(409, 422, 503),
    },
)
async def assign_drone(
    delivery_id: DeliveryId, body: AssignmentRequest, dispatcher: Dispatch, response: Response
) -> Assignment:
    """Assign the nearest free drone able to fly the delivery (201), or answer the assignment the
    same request got before (200); a changed request is planned again (200).

    409 once the package is aboard; 422 when no drone of the fleet could ever fly it; 503 with
    Retry-After when no capable drone is free now.
    """
    if body.delivery_id != delivery_id:
        raise invalid_field("deliveryId", "must equal the delivery id in the path")
    try:
        assigned = await dispatcher.assign(body)
    except UndeliverableError as exc:
        raise Problem(422, str(exc), title="Undeliverable", kind="undeliverable") from None
    except NoDroneFreeError as exc:
        raise Problem(
            503,
            str(exc),
            title="No drone free",
            kind="no-drone-free",
            headers={"Retry-After": str(exc.retry_after)},
        ) from None
    except PackageAboardError:
        raise Problem(409, PACKAGE_ABOARD, kind="package-aboard") from None
    if assigned.created:
        response.headers["Location"] = f"/api/dronedeliveries/{delivery_id}"
    else:
        response.status_code = status.HTTP_200_OK
    return assignment_view(assigned.record)


@drone_deliveries.get(
    "/{deliveryId}", response_model=AssignmentStatus, responses=problem_responses(404)
)
async def get_assignment(delivery_id: DeliveryId, dispatcher: Dispatch) -> AssignmentStatus:
    """The assignment with the drone's position now and how much of the route it has flown."""
    try:
        return await dispatcher.status(delivery_id)
    except AssignmentNotFoundError:
        raise Problem(
            404, "No drone is assigned to that delivery.", kind="assignment-not-found"
        ) from None


@drone_deliveries.delete(
    "/{deliveryId}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(409)
)
async def release_drone(delivery_id: DeliveryId, dispatcher: Dispatch) -> None:
    """Release the delivery's drone: free at once if it has not left, home first if it has.
    Releasing what is already released succeeds too."""
    try:
        await dispatcher.cancel(delivery_id)
    except PackageAboardError:
        raise Problem(409, PACKAGE_ABOARD, kind="package-aboard") from None


@drones.get("", response_model=list[Drone])
async def list_drones(store: SeededStore) -> list[Drone]:
    """The fleet, each drone where it is now."""
    now = utc_now()
    fleet = sorted((found.record for found in await store.drones.query()), key=lambda d: d.id)
    return [_drone(drone, now) for drone in fleet]


@drones.get("/{id}", response_model=Drone, responses=problem_responses(404))
async def get_drone(id: DroneId, store: SeededStore) -> Drone:
    found = await store.drones.get(id, id)
    if found is None:
        raise Problem(404, "No drone with that id.", kind="drone-not-found")
    return _drone(found.record, utc_now())


def _drone(drone: DroneRecord, now: datetime) -> Drone:
    return Drone(
        id=drone.id,
        model=drone.model,
        max_payload_kg=drone.max_payload_kg,
        max_size=drone.max_size,
        speed_kmh=drone.speed_kmh,
        range_km=drone.range_km,
        base=Location.of(drone.base),
        location=Location.of(location_of(drone, now)),
        status=status_of(drone, now),
        delivery_id=drone.delivery_id,
    )
