"""What comes in and what goes out of the delivery service's API, and the words both use.

Public: `DeliveryRequest` (POST, and PUT for clients of the original), `Reschedule` (PATCH),
`NotifyMeRequest`; out: `AcceptedDeliveryRequest`, `Delivery`, `DeliveryStatus`, `TrackingEvent`,
`Owner`, `DeliverySummary`. Internal, from the scheduler: `FlightEvent`, `Confirmation`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from delivery_service.locations import Location, LocationInput
from servicekit.models import ApiModel, CaseInsensitiveEnum, Identifier, PlainText


class Stage(CaseInsensitiveEnum):
    """Where a delivery is in its life (see docs/delivery.md for the state diagram)."""

    REQUESTED = "Requested"
    SCHEDULED = "Scheduled"
    HEADED_TO_PICKUP = "HeadedToPickup"
    HEADED_TO_DROPOFF = "HeadedToDropoff"
    COMPLETED = "Completed"
    CANCELLED = "Cancelled"
    FAILED = "Failed"

    @property
    def is_finished(self) -> bool:
        return self in (Stage.COMPLETED, Stage.CANCELLED, Stage.FAILED)

    @property
    def has_drone_assigned(self) -> bool:
        """A drone is assigned and the package is not aboard yet: the plan can still change."""
        return self in (Stage.SCHEDULED, Stage.HEADED_TO_PICKUP)


class EventKind(CaseInsensitiveEnum):
    """What a tracking event records. The original called this the event's stage."""

    CREATED = "Created"
    SCHEDULED = "Scheduled"
    RESCHEDULED = "Rescheduled"
    HEADED_TO_PICKUP = "HeadedToPickup"
    HEADED_TO_DROPOFF = "HeadedToDropoff"
    COMPLETED = "Completed"
    CANCELLED = "Cancelled"
    FAILED = "Failed"


class FlightStage(CaseInsensitiveEnum):
    """The stages the scheduler reports while a drone flies."""

    HEADED_TO_PICKUP = "HeadedToPickup"
    HEADED_TO_DROPOFF = "HeadedToDropoff"


class ConfirmationType(CaseInsensitiveEnum):
    FINGER_PRINT = "FingerPrint"
    PICTURE = "Picture"
    VOICE = "Voice"
    NONE = "None"


class PackageSize(CaseInsensitiveEnum):
    SMALL = "Small"
    MEDIUM = "Medium"
    LARGE = "Large"


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is the year 0 in UTC
        raise ValueError("is out of the range of dates") from None


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""An ISO-8601 time with its offset (a time without one is ambiguous and refused), kept in UTC."""

Weight = Annotated[float, Field(gt=0, allow_inf_nan=False, description="Kilograms.")]
Tag = Annotated[PlainText, Field(min_length=1, max_length=64)]


class PackageInfo(ApiModel):
    package_id: Identifier | None = Field(
        default=None, description="Generated when absent; a package that existed stays its owner's."
    )
    size: PackageSize
    weight: Weight
    tag: Tag


def check_deadline(pickup_time: datetime | None, deadline: datetime | None) -> datetime | None:
    """A deadline is in the future and after the pickup time (when that is known)."""
    if deadline is None:
        return None
    if deadline <= datetime.now(UTC):
        raise ValueError("has already passed")
    if pickup_time is not None and deadline <= pickup_time:
        raise ValueError("must be after pickupTime")
    return deadline


class DeliveryRequest(ApiModel):
    """The body of `POST /api/deliveryrequests` (and of `PUT /api/deliveries/{id}`)."""

    owner_id: Identifier
    pickup_location: LocationInput
    drop_off_location: LocationInput
    pickup_time: UtcDatetime | None = Field(
        default=None, description="Default now; a time in the past means as soon as possible."
    )
    deadline: UtcDatetime | None = Field(
        default=None, description="The latest acceptable drop-off; must be after pickupTime."
    )
    expedited: bool = False
    confirmation_required: ConfirmationType = ConfirmationType.NONE
    package_info: PackageInfo

    @field_validator("deadline")
    @classmethod
    def _deadline_after_pickup(cls, deadline: datetime | None, info: ValidationInfo) -> Any:
        return check_deadline(info.data.get("pickup_time"), deadline)


class AcceptedDeliveryRequest(ApiModel):
    """The answer to an accepted request: the request as it will be served, with its ids."""

    delivery_id: str
    owner_id: str
    pickup_location: Location
    drop_off_location: Location
    pickup_time: datetime
    deadline: datetime | None
    expedited: bool
    confirmation_required: ConfirmationType
    package_info: PackageInfo
    status: Literal["Accepted"] = "Accepted"


class Reschedule(ApiModel):
    """The body of `PATCH /api/deliveryrequests/{id}`: only what changes. `deadline: null` removes it."""

    pickup_location: LocationInput | None = None
    drop_off_location: LocationInput | None = None
    pickup_time: UtcDatetime | None = None
    deadline: UtcDatetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _something_to_change(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = {"pickupLocation", "dropOffLocation", "pickupTime", "deadline"}
            if not known & data.keys():
                raise ValueError(
                    "send at least one of pickupLocation, dropOffLocation, pickupTime, deadline"
                )
            nulls = sorted(k for k in known - {"deadline"} if k in data and data[k] is None)
            if nulls:
                raise ValueError(f"cannot be null: {', '.join(nulls)}")
        return data

    @field_validator("deadline")
    @classmethod
    def _deadline_after_pickup(cls, deadline: datetime | None, info: ValidationInfo) -> Any:
        return check_deadline(info.data.get("pickup_time"), deadline)

    def changes(self) -> set[str]:
        """The fields the client sent (a `deadline: null` removes the deadline)."""
        return set(self.model_fields_set)


class Owner(ApiModel):
    user_id: str
    account_id: str = Field(
        description="The account billed. The system keeps no separate accounts: it is the owner id."
    )


class Delivery(ApiModel):
    id: str
    owner: Owner
    pickup: Location
    dropoff: Location
    pickup_time: datetime
    deadline: datetime | None
    expedited: bool
    confirmation_required: ConfirmationType
    package_id: str
    drone_id: str | None
    stage: Stage
    pickup_eta: datetime | None
    dropoff_eta: datetime | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime


class DeliveryStatus(ApiModel):
    stage: Stage
    drone_id: str | None
    last_known_location: Location | None = Field(
        description="The drone's live position while it flies; otherwise where it was last reported."
    )
    pickup_eta: datetime | None
    dropoff_eta: datetime | None


class TrackingEvent(ApiModel):
    event_id: str
    delivery_id: str
    stage: EventKind
    time: datetime
    location: Location | None
    drone_id: str | None = None
    pickup_eta: datetime | None = None
    dropoff_eta: datetime | None = None
    reason: str | None = Field(default=None, description="Why, for Failed and Cancelled.")
    confirmation_type: ConfirmationType | None = None


class DeliverySummary(ApiModel):
    owner_id: str
    year: int
    month: int
    count: int = Field(description="Deliveries the owner requested that month.")


EmailAddress = Annotated[
    str,
    Field(
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$",
        description="An e-mail address (checked for its shape only).",
    ),
]
PhoneNumber = Annotated[
    str,
    Field(pattern=r"^\+?[1-9][0-9]{6,14}$", description="E.164: `+` and 7-15 digits."),
]


class NotifyMeRequest(ApiModel):
    email_address: EmailAddress | None = None
    sms: PhoneNumber | None = None

    @model_validator(mode="before")
    @classmethod
    def _compact_phone_number(cls, data: Any) -> Any:
        # People write phone numbers with spaces, dashes and brackets; the number is the digits.
        if isinstance(data, dict) and isinstance(data.get("sms"), str):
            data = {**data, "sms": "".join(c for c in data["sms"] if c not in " -().")}
        return data

    @model_validator(mode="after")
    def _at_least_one_channel(self) -> NotifyMeRequest:
        if self.email_address is None and self.sms is None:
            raise ValueError("send emailAddress, sms, or both")
        return self


# The scheduler retries a report until it is acknowledged, so its ids are taken as they come (within
# reason) rather than held to the public id pattern: a refused report would be sent forever.
EventId = Annotated[str, Field(min_length=1, max_length=200, description="Chosen by the sender.")]
DroneId = Annotated[str, Field(min_length=1, max_length=100)]


class FlightEvent(ApiModel):
    """The scheduler reports a drone heading to pickup or drop-off (internal)."""

    event_id: EventId
    stage: FlightStage
    time: UtcDatetime
    location: Location
    drone_id: DroneId


class Confirmation(ApiModel):
    """The scheduler reports the package delivered (internal)."""

    event_id: EventId
    time: UtcDatetime
    location: Location
    drone_id: DroneId
    confirmation_type: ConfirmationType = ConfirmationType.NONE
