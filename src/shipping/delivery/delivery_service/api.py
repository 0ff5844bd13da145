"""The delivery service's HTTP API.

Public (through the gateway): `/api/deliveryrequests` and the reads of `/api/deliveries`. Internal
(the gateway answers 404 for them): the scheduler's `POST /api/deliveries/{id}/events` and
`/confirmations`, and `PUT /api/deliveries/{id}` for clients of the original implementation.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse

from delivery_service.changes import ChangeResult, DeliveryChanges
from delivery_service.intake import DeliveryIntake, accepted_for, new_id, package_owned
from delivery_service.models import (
    AcceptedDeliveryRequest,
    Confirmation,
    Delivery,
    DeliveryRequest,
    DeliveryStatus,
    DeliverySummary,
    FlightEvent,
    NotifyMeRequest,
    Owner,
    Reschedule,
    TrackingEvent,
)
from delivery_service.store import DeliveryRepository, NotifyMeRecord, NotifyMeRepository
from delivery_service.tracking import DeliveryTracking, not_found
from delivery_service.views import delivery_view, owner_view
from servicekit.models import IDENTIFIER_PATTERN
from servicekit.problems import problem_responses


def _state(name: str) -> object:
    # `async def` although it does not await: FastAPI runs a plain `def` dependency on a worker
    # thread, a hand-off per request that costs more than the lookup itself.
    async def dependency(request: Request) -> object:
        return getattr(request.app.state, name)

    return Depends(dependency)


Intake = Annotated[DeliveryIntake, _state("intake")]
Changes = Annotated[DeliveryChanges, _state("changes")]
Tracking = Annotated[DeliveryTracking, _state("tracking")]
Deliveries = Annotated[DeliveryRepository, _state("deliveries")]
NotifyMe = Annotated[NotifyMeRepository, _state("notify_me")]
DeliveryId = Annotated[str, Path(pattern=IDENTIFIER_PATTERN, description="The delivery's id.")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Repeat a POST with the same key and body to get the first answer again.",
    ),
]

PENDING: dict[int | str, dict[str, Any]] = {
    202: {
        "model": Delivery,
        "description": "The scheduler has not decided yet; the change goes on in the background",
    }
}

requests = APIRouter(prefix="/api/deliveryrequests", tags=["delivery requests"])
deliveries = APIRouter(prefix="/api/deliveries", tags=["deliveries"])
tracking = APIRouter(prefix="/api/deliveries", tags=["tracking (internal)"])


@requests.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AcceptedDeliveryRequest,
    responses=problem_responses(422),
)
async def request_delivery(
    body: DeliveryRequest,
    intake: Intake,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> AcceptedDeliveryRequest:
    """Accept a delivery request; it is stored before this answers, and scheduled in the background."""
    accepted = await intake.accept(body, idempotency_key)
    response.headers["Location"] = _location(accepted.delivery_id)
    return accepted


@requests.patch(
    "/{id}", response_model=Delivery, responses={**PENDING, **problem_responses(404, 409, 422, 503)}
)
async def reschedule(
    id: DeliveryId, body: Reschedule, changes: Changes, response: Response
) -> Delivery:
    """Change where or when: decided at once before a drone is assigned, by the scheduler after."""
    return _answer(await changes.reschedule(id, body), response)


@requests.delete(
    "/{id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**PENDING, **problem_responses(404, 409)},
)
async def cancel(id: DeliveryId, changes: Changes) -> Response:
    """Cancel the delivery and release its drone; cancelling again answers 204 again."""
    result = await changes.cancel(id)
    if result.decided:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return JSONResponse(
        delivery_view(result.delivery).model_dump(mode="json"),
        status_code=status.HTTP_202_ACCEPTED,
        headers={"Location": _location(id)},
    )


@deliveries.get("/summary", response_model=DeliverySummary, responses=problem_responses(422))
async def month_summary(
    deliveries: Deliveries,
    owner_id: Annotated[str, Query(alias="ownerId", pattern=IDENTIFIER_PATTERN)],
    year: Annotated[int, Query(ge=1, le=9999)],
    month: Annotated[int, Query(ge=1, le=12)],
) -> DeliverySummary:
    """How many deliveries an owner requested in a month."""
    count = await deliveries.count_created(owner_id, f"{year:04d}-{month:02d}")
    return DeliverySummary(owner_id=owner_id, year=year, month=month, count=count)


@deliveries.get("/{id}", response_model=Delivery, responses=problem_responses(404))
async def get_delivery(id: DeliveryId, deliveries: Deliveries) -> Delivery:
    current = await deliveries.get(id)
    if current is None:
        raise not_found()
    return delivery_view(current.delivery)


@deliveries.get("/{id}/status", response_model=DeliveryStatus, responses=problem_responses(404))
async def delivery_status(id: DeliveryId, tracking: Tracking) -> DeliveryStatus:
    """The stage, the drone, where it is now, and when it arrives."""
    return await tracking.status(id)


@deliveries.get(
    "/{id}/events", response_model=list[TrackingEvent], responses=problem_responses(404)
)
async def delivery_events(id: DeliveryId, tracking: Tracking) -> list[TrackingEvent]:
    """The delivery's tracking events, oldest first."""
    return await tracking.events(id)


@deliveries.get("/{id}/owner", response_model=Owner, responses=problem_responses(404))
async def delivery_owner(id: DeliveryId, deliveries: Deliveries) -> Owner:
    current = await deliveries.get(id)
    if current is None:
        raise not_found()
    return owner_view(current.delivery)


@deliveries.post(
    "/{id}/notifymerequests",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404),
)
async def notify_me(
    id: DeliveryId, body: NotifyMeRequest, deliveries: Deliveries, notify_me: NotifyMe
) -> None:
    """Ask to be told about the delivery's progress by e-mail, SMS, or both."""
    if await deliveries.get(id) is None:
        raise not_found()
    await notify_me.add(
        NotifyMeRecord(id=new_id(), delivery_id=id, email_address=body.email_address, sms=body.sms)
    )


@deliveries.put(
    "/{id}",
    status_code=status.HTTP_201_CREATED,
    response_model=Delivery,
    responses={
        200: {"model": Delivery, "description": "It existed; its plan now matches the body"},
        **PENDING,
        **problem_responses(404, 409, 422, 503),
    },
)
async def put_delivery(
    id: DeliveryId,
    body: DeliveryRequest,
    intake: Intake,
    changes: Changes,
    response: Response,
) -> Delivery:
    """Create the delivery under this id (201), or bring an existing one's plan in line (200).

    For clients of the original implementation, which created deliveries directly. A new delivery
    is scheduled like a requested one; an existing one may change only its plan (as PATCH does).
    """
    intake.check(body)
    created = await intake.create(accepted_for(body, id), package_owned=package_owned(body))
    if created is not None:
        response.headers["Location"] = _location(id)
        return delivery_view(created.delivery)
    response.status_code = status.HTTP_200_OK
    return _answer(await changes.replace(id, body), response)


@tracking.post(
    "/{id}/events",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404, 409),
)
async def flight_event(id: DeliveryId, body: FlightEvent, tracking: Tracking) -> None:
    """The scheduler reports the drone heading to pickup or drop-off (a repeated eventId is 204)."""
    await tracking.record_flight(id, body)


@tracking.post(
    "/{id}/confirmations",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404, 409),
)
async def confirmation(id: DeliveryId, body: Confirmation, tracking: Tracking) -> None:
    """The scheduler reports the package delivered: the delivery is `Completed`."""
    await tracking.record_confirmation(id, body)


def _answer(result: ChangeResult, response: Response) -> Delivery:
    if not result.decided:
        response.status_code = status.HTTP_202_ACCEPTED
        response.headers["Location"] = _location(result.delivery.id)
    return delivery_view(result.delivery)


def _location(delivery_id: str) -> str:
    return f"/api/deliveries/{delivery_id}"
