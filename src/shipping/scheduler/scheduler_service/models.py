"""What comes in (`AssignmentRequest`, `UtilizationQuery`) and what goes out (`Assignment`,
`AssignmentStatus`, `Drone`, `Utilization`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AwareDatetime, Field, field_validator

from scheduler_service.geo import GeoPoint
from servicekit.models import ApiModel, CaseInsensitiveEnum, Identifier

BOOKING_HORIZON = timedelta(days=30)
"""How far ahead a pickup may be booked: a drone is reserved from the moment it is assigned."""


class PackageSize(CaseInsensitiveEnum):
    SMALL = "Small"
    MEDIUM = "Medium"
    LARGE = "Large"

    @property
    def rank(self) -> int:
        """Small < Medium < Large: a drone that takes a size takes every smaller one."""
        return _SIZE_RANKS[self]


_SIZE_RANKS = {size: rank for rank, size in enumerate(PackageSize)}


class ConfirmationType(CaseInsensitiveEnum):
    NONE = "None"
    FINGERPRINT = "FingerPrint"
    PICTURE = "Picture"
    VOICE = "Voice"


class AssignmentStage(CaseInsensitiveEnum):
    """Where an assignment is, named like the delivery stages it drives."""

    SCHEDULED = "Scheduled"
    HEADED_TO_PICKUP = "HeadedToPickup"
    HEADED_TO_DROPOFF = "HeadedToDropoff"
    COMPLETED = "Completed"


class DroneStatus(CaseInsensitiveEnum):
    AVAILABLE = "Available"
    RESERVED = "Reserved"
    """Claimed for a delivery, waiting on the ground for its departure time."""
    HEADED_TO_PICKUP = "HeadedToPickup"
    HEADED_TO_DROPOFF = "HeadedToDropoff"
    RETURNING = "Returning"


Coordinate = Annotated[float, Field(allow_inf_nan=False)]


class Location(ApiModel):
    latitude: Annotated[Coordinate, Field(ge=-90, le=90)]
    longitude: Annotated[Coordinate, Field(ge=-180, le=180)]
    altitude: Annotated[Coordinate | None, Field(ge=-500, le=10_000, description="Metres.")] = None

    @property
    def point(self) -> GeoPoint:
        return GeoPoint(self.latitude, self.longitude)

    @classmethod
    def of(cls, point: GeoPoint) -> Location:
        return cls(latitude=point.latitude, longitude=point.longitude)


class PackageDetail(ApiModel):
    id: Identifier
    size: PackageSize
    weight: Annotated[
        float,
        Field(
            gt=0,
            le=1000,
            allow_inf_nan=False,
            description="Kilograms. Over the fleet's largest payload is refused with 422 too, "
            "saying which payload is the largest.",
        ),
    ]


class AssignmentRequest(ApiModel):
    """The body of `PUT /api/dronedeliveries/{deliveryId}`: what to fly, from where to where, when."""

    delivery_id: Identifier
    owner_id: Identifier
    pickup: Location
    dropoff: Location
    pickup_time: AwareDatetime | None = Field(
        default=None,
        description="When the package is ready; absent or past means as soon as possible. The "
        "drone is reserved from the assignment and leaves so as to be there at this time.",
    )
    expedited: bool = False
    package_detail: PackageDetail
    confirmation_required: ConfirmationType = Field(
        default=ConfirmationType.NONE,
        description="The confirmation the drone collects on arrival (optional; `None`).",
    )

    @field_validator("pickup_time")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value > datetime.now(UTC) + BOOKING_HORIZON:
            raise ValueError(f"must be at most {BOOKING_HORIZON.days} days ahead")
        # One spelling per instant, so that a repeated request compares equal to the first.
        return value.astimezone(UTC)


class Assignment(ApiModel):
    delivery_id: str
    drone_id: str
    pickup_eta: datetime
    dropoff_eta: datetime
    distance_km: float = Field(description="The whole route: base, pickup, drop-off, base.")


class AssignmentStatus(Assignment):
    owner_id: str
    status: AssignmentStage
    location: Location = Field(description="Where the drone is now.")
    progress: float = Field(ge=0, le=1, description="How much of the route has been flown.")


class Drone(ApiModel):
    id: str
    model: str
    max_payload_kg: float
    max_size: PackageSize
    speed_kmh: float
    range_km: float
    base: Location
    location: Location = Field(description="Where the drone is now.")
    status: DroneStatus
    delivery_id: str | None = Field(description="The delivery it is serving, until drop-off.")


class UtilizationQuery(ApiModel):
    owner_id: Identifier
    year: Annotated[int, Field(ge=1, le=9998)]
    month: Annotated[int, Field(ge=1, le=12)]


class Utilization(ApiModel):
    traveled_miles: float
    assigned_hours: float = Field(description="Flight hours at the drones' own speed.")


class TrackingEvent(ApiModel):
    """Posted to the delivery service (`POST /api/deliveries/{id}/events`) as the drone heads on."""

    event_id: str
    stage: AssignmentStage
    time: datetime
    location: Location
    drone_id: str


class DeliveryConfirmation(ApiModel):
    """Posted to the delivery service (`POST /api/deliveries/{id}/confirmations`) on arrival."""

    event_id: str
    time: datetime
    location: Location
    drone_id: str
    confirmation_type: ConfirmationType
