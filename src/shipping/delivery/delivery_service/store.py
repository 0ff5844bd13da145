"""What the delivery service stores, and the repositories that read and write it.

Four containers of servicekit's document store (SQLite here, Cosmos DB in production; only the
`Container` protocol is used, so either works unchanged):

| container | partition key | holds |
|---|---|---|
| `deliveries` | `id` | one document per delivery: the request, its stage, the workflow's checkpoints, its lease |
| `delivery_events` | `deliveryId` | the tracking events of a delivery, in one partition with each other |
| `idempotency_keys` | `id` (a digest of the key) | the first answer given for an `Idempotency-Key` |
| `notify_me_requests` | `deliveryId` | who wants to hear about a delivery |

A delivery document is changed only by conditional writes (ETag): the workflow's checkpoints, the
API's cancel and reschedule, the scheduler's tracking events and the sweeper's claims all read,
change and write back on the ETag they read, and start over when another writer came first.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from delivery_service.locations import Location
from delivery_service.models import ConfirmationType, EventKind, PackageSize, Stage
from servicekit.stores.documents import Container, ContainerSpec
from servicekit.stores.errors import DocumentExistsError
from servicekit.telemetry import current_traceparent

DELIVERIES = "deliveries"
EVENTS = "delivery_events"
IDEMPOTENCY_KEYS = "idempotency_keys"
NOTIFY_ME_REQUESTS = "notify_me_requests"

CONTAINERS = (
    ContainerSpec(
        DELIVERIES, partition_key="id", indexed=("ownerId", "createdMonth", "work.leaseExpiresAt")
    ),
    ContainerSpec(EVENTS, partition_key="deliveryId"),
    ContainerSpec(IDEMPOTENCY_KEYS, partition_key="id"),
    ContainerSpec(NOTIFY_ME_REQUESTS, partition_key="deliveryId"),
)

# How many outcomes of cancels and reschedules a delivery remembers for the requests awaiting them.
REMEMBERED_OUTCOMES = 8


class StoredModel(BaseModel):
    """A stored document or part of one: camelCase JSON, like everything else the services exchange."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True
    )

    def document(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Plan(StoredModel):
    """What the scheduler plans a flight from; a reschedule changes exactly these."""

    pickup: Location
    dropoff: Location
    pickup_time: datetime
    deadline: datetime | None = None


class PackageDetails(StoredModel):
    id: str
    size: PackageSize
    weight: float
    tag: str


class Progress(StoredModel):
    """The workflow's checkpoints: what it has done to the neighbours, so it resumes and undoes exactly."""

    package_owned: bool | None = Field(
        default=None,
        description="Decided before the package is registered: True when this delivery created it, "
        "so only then does compensation delete it. None until decided.",
    )
    package_registered: bool = False
    assignment_requested: bool = Field(
        default=False,
        description="Set before the first assignment request: from then on a drone may be held "
        "for this delivery, so compensation releases one.",
    )
    assigned_plan: str | None = Field(
        default=None,
        description="The fingerprint of the plan the scheduler's assignment is known to match.",
    )
    drone_released: bool = False
    package_deleted: bool = False


class Goal(StrEnum):
    SCHEDULE = "schedule"
    """Register the package and make the scheduler's assignment match the delivery's plan."""
    PROPOSE = "propose"
    """Ask the scheduler to re-plan for `proposal`; adopt it if accepted, keep the plan if not."""
    COMPENSATE = "compensate"
    """Release the drone, delete the package if ours, and end in `conclusion`."""


class FailureCause(StrEnum):
    """Why a delivery failed, in a word a dashboard can group by (the reason says it in full)."""

    PACKAGE_REFUSED = "package_refused"
    UNDELIVERABLE = "undeliverable"
    DEADLINE = "deadline"
    BUDGET_SPENT = "budget_spent"


class Work(StoredModel):
    """Work pending on a delivery, and the lease of the replica doing it."""

    goal: Goal
    lease_owner: str = Field(default="", description="The replica doing the work.")
    lease_expires_at: float = Field(
        default=0.0,
        description="Seconds since the epoch; 0 for work nobody has claimed yet, which any "
        "replica's sweeper may take.",
    )
    budget_ends_at: float | None = Field(
        default=None, description="When scheduling or a re-plan gives up waiting (epoch seconds)."
    )
    proposal: Plan | None = None
    change_id: str | None = Field(
        default=None, description="The cancel or reschedule request awaiting this work's outcome."
    )
    conclusion: Stage | None = Field(default=None, description="Compensation: Cancelled or Failed.")
    reason: str | None = None
    cause: FailureCause | None = Field(
        default=None, description="Why a delivery fails, in one word: the failure metric's label."
    )
    traceparent: str | None = Field(
        default_factory=current_traceparent,
        description="The trace of the request (or step) that gave this work; its spans link to it.",
    )


class ChangeOutcome(StoredModel):
    """How a cancel or reschedule that needed the scheduler's agreement ended."""

    id: str
    applied: bool
    status: int = Field(description="The HTTP status that answers the request.")
    detail: str | None = None
    retry_after: float | None = None


class StoredEvent(StoredModel):
    id: str
    delivery_id: str
    stage: EventKind
    time: datetime
    location: Location | None
    source_event_id: str | None = Field(
        default=None, description="The sender's eventId, for the events the scheduler posts."
    )
    drone_id: str | None = None
    pickup_eta: datetime | None = None
    dropoff_eta: datetime | None = None
    reason: str | None = None
    cause: FailureCause | None = None
    confirmation_type: ConfirmationType | None = None
    recorded_at: datetime = Field(default_factory=utc_now)


class StoredDelivery(StoredModel):
    id: str
    owner_id: str
    plan: Plan
    expedited: bool
    confirmation_required: ConfirmationType
    package: PackageDetails
    stage: Stage = Stage.REQUESTED
    drone_id: str | None = None
    pickup_eta: datetime | None = None
    dropoff_eta: datetime | None = None
    distance_km: float | None = None
    failure_reason: str | None = None
    last_known_location: Location | None = None
    last_known_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    created_month: str = Field(description="YYYY-MM of createdAt, for the monthly summary.")
    progress: Progress = Field(default_factory=Progress)
    work: Work | None = None
    outbox: list[StoredEvent] = Field(
        default_factory=list,
        description="Events written with the change they record, copied to delivery_events by the "
        "workflow; readers see them at once.",
    )
    outcomes: list[ChangeOutcome] = Field(default_factory=list)

    def changed(self, **changes: Any) -> Self:
        """A copy with `changes` and a new `updatedAt`."""
        return self.model_copy(update={**changes, "updated_at": utc_now()})

    def with_event(self, stage: EventKind, *, time: datetime | None = None, **details: Any) -> Self:
        """A copy that records a lifecycle event (in its outbox, so it commits with the change).

        The location is where the package is: still at the pickup for every event this service
        records itself; the scheduler reports the drone's position in its own events.
        """
        event = StoredEvent(
            id=uuid.uuid4().hex,
            delivery_id=self.id,
            stage=stage,
            time=time or utc_now(),
            location=self.plan.pickup,
            **details,
        )
        return self.model_copy(update={"outbox": [*self.outbox, event]})

    def with_outcome(self, outcome: ChangeOutcome) -> Self:
        return self.model_copy(
            update={"outcomes": [*self.outcomes, outcome][-REMEMBERED_OUTCOMES:]}
        )

    def outcome_of(self, change_id: str) -> ChangeOutcome | None:
        return next((o for o in self.outcomes if o.id == change_id), None)


class IdempotencyRecord(StoredModel):
    id: str = Field(description="A digest of the key, so any key is a valid document id.")
    fingerprint: str = Field(description="A digest of the request the key was first used with.")
    answer: dict[str, Any] = Field(description="The accepted request, as first answered.")
    created_at: datetime = Field(default_factory=utc_now)


class NotifyMeRecord(StoredModel):
    id: str
    delivery_id: str
    email_address: str | None
    sms: str | None
    created_at: datetime = Field(default_factory=utc_now)


def digest(value: Any) -> str:
    """A stable digest of JSON-able data (key order and spacing do not matter)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Versioned:
    """A delivery as read, with the ETag a conditional write must name."""

    delivery: StoredDelivery
    etag: str


class DeliveryRepository:
    def __init__(self, container: Container) -> None:
        self._container = container

    async def get(self, id: str) -> Versioned | None:
        document = await self._container.get(id, id)
        if document is None:
            return None
        return Versioned(StoredDelivery.model_validate(document.body), document.etag)

    async def create(self, delivery: StoredDelivery) -> Versioned:
        """Raise DocumentExistsError when a delivery with that id exists."""
        document = await self._container.create(delivery.document())
        return Versioned(delivery, document.etag)

    async def replace(self, delivery: StoredDelivery, etag: str) -> Versioned:
        """Raise PreconditionFailedError when it changed since `etag` was read."""
        document = await self._container.replace(delivery.document(), etag=etag)
        return Versioned(delivery, document.etag)

    async def with_expired_leases(self, now: float, limit: int) -> list[Versioned]:
        documents = await self._container.query(
            ("work.leaseExpiresAt", "<", now), order_by="work.leaseExpiresAt", limit=limit
        )
        return [Versioned(StoredDelivery.model_validate(d.body), d.etag) for d in documents]

    async def count_created(self, owner_id: str, month: str) -> int:
        return await self._container.count(("ownerId", "=", owner_id), ("createdMonth", "=", month))


class EventRepository:
    def __init__(self, container: Container) -> None:
        self._container = container

    async def add(self, event: StoredEvent) -> bool:
        """Store the event once; answer False when an event with its id was already stored."""
        try:
            await self._container.create(event.document())
        except DocumentExistsError:
            return False
        return True

    async def exists(self, delivery_id: str, id: str) -> bool:
        return await self._container.get(id, delivery_id) is not None

    async def of(self, delivery_id: str) -> list[StoredEvent]:
        documents = await self._container.query(partition=delivery_id)
        return [StoredEvent.model_validate(d.body) for d in documents]


class IdempotencyRepository:
    def __init__(self, container: Container) -> None:
        self._container = container

    async def first_use(self, record: IdempotencyRecord) -> IdempotencyRecord:
        """Store the record unless the key was used before; answer the record that holds the key."""
        while True:
            try:
                await self._container.create(record.document())
                return record
            except DocumentExistsError:
                existing = await self._container.get(record.id, record.id)
                if existing is not None:
                    return IdempotencyRecord.model_validate(existing.body)
                # Removed between the two calls (a TTL on the container): claim it again.


class NotifyMeRepository:
    def __init__(self, container: Container) -> None:
        self._container = container

    async def add(self, record: NotifyMeRecord) -> None:
        await self._container.create(record.document())

    async def of(self, delivery_id: str) -> list[NotifyMeRecord]:
        documents = await self._container.query(partition=delivery_id)
        return [NotifyMeRecord.model_validate(d.body) for d in documents]
