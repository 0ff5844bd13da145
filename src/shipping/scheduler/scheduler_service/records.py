"""What the scheduler stores: the documents of its containers (see `store.CONTAINERS`)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, PlainSerializer
from pydantic.alias_generators import to_camel

from scheduler_service.geo import GeoPoint
from scheduler_service.models import ConfirmationType, PackageSize


def stored_time(moment: datetime) -> str:
    """A time as fixed-width UTC text, so that comparing the texts (as queries do) compares the times.

    Every time of every record written passes here: isoformat is faster than strftime, and a time
    in UTC already needs no conversion."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds").removesuffix("+00:00") + "Z"


StoredTime = Annotated[AwareDatetime, PlainSerializer(stored_time, return_type=str)]


class Record(BaseModel):
    """A stored document: camelCase fields, like everything else the scheduler writes."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True
    )

    def as_document(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class StopKind(StrEnum):
    DEPARTURE = "Departure"
    PICKUP = "Pickup"
    DROPOFF = "Dropoff"
    RECALL = "Recall"
    """Where a recalled drone turned back; the start of an empty flight home."""
    LANDING = "Landing"


class Stop(Record):
    kind: StopKind
    location: GeoPoint
    at: StoredTime


class FlightPlan(Record):
    """A drone's route and the time it reaches each stop. Where the drone is follows from the plan
    and the clock, so a flying drone's position is never written."""

    plan_id: str
    drone_id: str
    delivery_id: str | None = None
    owner_id: str | None = None
    confirmation_type: ConfirmationType = ConfirmationType.NONE
    planned_at: StoredTime
    stops: list[Stop]
    traceparent: str | None = None
    """The trace of the request that planned the flight; its notifications' spans link to it."""

    def stop(self, kind: StopKind) -> Stop | None:
        return next((stop for stop in self.stops if stop.kind == kind), None)


class PendingWrite(Record):
    """A document a milestone produced, waiting to be copied to its container (see `drones`)."""

    container: str
    document: dict[str, Any]


class DroneRecord(Record):
    id: str
    model: str
    max_payload_kg: float
    max_size: PackageSize
    speed_kmh: float
    range_km: float
    base: GeoPoint
    delivery_id: str | None = None
    """The delivery the drone serves, from its claim to the drop-off."""
    claimed_at: StoredTime | None = None
    """Set exactly while `flight` is: from the claim until the drone is on the ground and free
    (a query of free drones filters on it, as it is indexed)."""
    flight: FlightPlan | None = None
    """None exactly when the drone is on the ground at its base and free."""
    free_since: StoredTime | None = None
    """When the drone last became free (landed, or released before leaving); None if never taken.
    A plan made before then cannot claim it: the drone did something else since."""
    next_stop: int = 0
    """The index of the flight's first stop whose milestone has not been handled yet."""
    next_milestone_at: StoredTime | None = None
    """When the background loop should next look at this drone."""
    pending: list[PendingWrite] = []


class AssignmentRecord(Record):
    """Which plan a delivery has: written before the drone is claimed, so a claim always has one."""

    id: str
    delivery_id: str
    owner_id: str
    request: dict[str, Any]
    """The request the plan answers, as JSON; a repeated request is compared with it."""
    plan: FlightPlan
    created_at: StoredTime
    updated_at: StoredTime


NotificationRoute = Literal["events", "confirmations"]


class NotificationRecord(Record):
    """A notification to the delivery service, kept until it is acknowledged (the outbox)."""

    id: str
    """The eventId: the delivery service takes a notification once per id."""
    delivery_id: str
    route: NotificationRoute
    body: dict[str, Any]
    order_key: str
    """Sorts a delivery's notifications in the order they must arrive."""
    traceparent: str | None = None
    """The trace of the request that planned the flight (see `FlightPlan`)."""
    attempts: int = 0
    next_attempt_at: StoredTime
    sending: bool = False
    """Leased for an attempt (until `next_attempt_at`): the delivery's later notifications wait
    for it a tick at a time, not for as long as the lease."""


class FlightRecord(Record):
    """A completed delivery flight, for utilization: one per plan, in its owner's partition."""

    id: str
    owner_id: str
    delivery_id: str
    drone_id: str
    year: int
    month: int
    traveled_miles: float
    assigned_hours: float
    completed_at: StoredTime
