"""Intake: a delivery request becomes a stored delivery with pending work, before anyone is told so.

The delivery is written (stage `Requested`, its `Created` event, work `schedule` with this replica's
lease) before the request is answered, so an accepted request survives any crash after the answer.

An `Idempotency-Key` makes retries safe: the first use of a key stores the answer it will give, with
the delivery's id chosen in advance; every use (the first included, and concurrent ones) then makes
sure that delivery exists, creating it if need be. A retry after a crash between the two writes
therefore finishes the first attempt's work instead of starting a second delivery.
"""

from __future__ import annotations

import time
import uuid

from delivery_service.leases import Kick, Leases
from delivery_service.models import AcceptedDeliveryRequest, DeliveryRequest, EventKind, PackageInfo
from delivery_service.priority import IntakeFirst
from delivery_service.settings import DeliverySettings
from delivery_service.store import (
    DeliveryRepository,
    Goal,
    IdempotencyRecord,
    IdempotencyRepository,
    PackageDetails,
    Plan,
    Progress,
    StoredDelivery,
    Versioned,
    Work,
    digest,
    utc_now,
)
from servicekit.problems import Problem, invalid_field
from servicekit.stores.errors import DocumentExistsError


def new_id() -> str:
    return str(uuid.uuid4())


class DeliveryIntake:
    def __init__(
        self,
        deliveries: DeliveryRepository,
        keys: IdempotencyRepository,
        leases: Leases,
        kick: Kick,
        intake_first: IntakeFirst,
        settings: DeliverySettings,
    ) -> None:
        self._deliveries = deliveries
        self._keys = keys
        self._leases = leases
        self._kick = kick
        self._intake_first = intake_first
        self._settings = settings

    def check(self, request: DeliveryRequest) -> None:
        """Refuse what the model cannot know is impossible: a package heavier than the fleet lifts."""
        if request.package_info.weight > self._settings.max_weight_kg:
            raise invalid_field(
                "packageInfo.weight",
                f"must be at most {self._settings.max_weight_kg:g} kg, "
                "the largest payload of the fleet",
            )

    async def accept(
        self, request: DeliveryRequest, idempotency_key: str | None
    ) -> AcceptedDeliveryRequest:
        """Store a new delivery for the request (or find the one its key stands for)."""
        self.check(request)
        accepted = accepted_for(request, new_id())
        if idempotency_key is not None:
            fingerprint = digest(request.model_dump(mode="json"))
            record = await self._keys.first_use(
                IdempotencyRecord(
                    id=digest(idempotency_key),
                    fingerprint=fingerprint,
                    answer=accepted.model_dump(mode="json"),
                )
            )
            if record.fingerprint != fingerprint:
                raise Problem(
                    422,
                    "This Idempotency-Key was first used with a different request; "
                    "use a new key for a new request.",
                    title="Idempotency-Key reused",
                    kind="idempotency-key-reused",
                )
            accepted = AcceptedDeliveryRequest.model_validate(record.answer)
        await self.create(accepted, package_owned=package_owned(request))
        self._intake_first.accepted()
        return accepted

    async def create(
        self, accepted: AcceptedDeliveryRequest, *, package_owned: bool | None = None
    ) -> Versioned | None:
        """Store the delivery; answer None when one with its id exists already.

        `package_owned` is True when the package id was generated for this delivery; None leaves
        the workflow to find out whether the package existed before.
        """
        try:
            created = await self._deliveries.create(self._new_delivery(accepted, package_owned))
        except DocumentExistsError:
            return None
        self._kick(accepted.delivery_id)
        return created

    def _new_delivery(
        self, accepted: AcceptedDeliveryRequest, package_owned: bool | None
    ) -> StoredDelivery:
        now = utc_now()
        package = accepted.package_info
        assert package.package_id is not None
        delivery = StoredDelivery(
            id=accepted.delivery_id,
            owner_id=accepted.owner_id,
            plan=Plan(
                pickup=accepted.pickup_location,
                dropoff=accepted.drop_off_location,
                pickup_time=accepted.pickup_time,
                deadline=accepted.deadline,
            ),
            expedited=accepted.expedited,
            confirmation_required=accepted.confirmation_required,
            package=PackageDetails(
                id=package.package_id, size=package.size, weight=package.weight, tag=package.tag
            ),
            created_at=now,
            updated_at=now,
            created_month=now.strftime("%Y-%m"),
            progress=Progress(package_owned=package_owned),
            work=Work(
                goal=Goal.SCHEDULE,
                lease_owner=self._leases.owner,
                lease_expires_at=self._leases.expiry(),
                budget_ends_at=time.time() + self._settings.scheduling_budget_seconds,
            ),
        )
        return delivery.with_event(EventKind.CREATED, time=now)


def package_owned(request: DeliveryRequest) -> bool | None:
    """True when the package id will be generated for the delivery: no package has it yet, so it is
    the delivery's own and the workflow need not ask the package service. None when the client named
    the package, which may exist already."""
    return True if request.package_info.package_id is None else None


def accepted_for(request: DeliveryRequest, delivery_id: str) -> AcceptedDeliveryRequest:
    """The request as it will be served under `delivery_id`: defaults filled in, ids chosen."""
    info = request.package_info
    return AcceptedDeliveryRequest(
        delivery_id=delivery_id,
        owner_id=request.owner_id,
        pickup_location=request.pickup_location,
        drop_off_location=request.drop_off_location,
        pickup_time=request.pickup_time or utc_now(),
        deadline=request.deadline,
        expedited=request.expedited,
        confirmation_required=request.confirmation_required,
        package_info=PackageInfo(
            package_id=info.package_id or new_id(),
            size=info.size,
            weight=info.weight,
            tag=info.tag,
        ),
    )
