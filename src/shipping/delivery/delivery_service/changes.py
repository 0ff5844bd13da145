"""Changes a client asks for after the request: cancel, reschedule, and replace (PUT).

What a change does depends on the stage:
- `Requested`: no drone is committed yet, so the change is decided at once. A cancel makes the
  delivery `Cancelled` and gives it `compensate` work (release whatever the workflow got so far); a
  reschedule changes the plan, and the running workflow asks the scheduler for the new one.
- `Scheduled`, `HeadedToPickup`: the scheduler must agree (its drone may pick the package up any
  moment). The change becomes pending work (`compensate` to cancel, `propose` to re-plan) and the
  request waits for the outcome the workflow records; when that takes longer than the wait, the
  request is answered 202 and the work goes on.
- After pickup, or once finished: 409.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from delivery_service.leases import Kick, Leases
from delivery_service.models import DeliveryRequest, EventKind, Reschedule, Stage, check_deadline
from delivery_service.settings import DeliverySettings
from delivery_service.store import (
    ChangeOutcome,
    DeliveryRepository,
    Goal,
    Plan,
    StoredDelivery,
    Versioned,
    Work,
)
from servicekit.problems import Problem, invalid_field
from servicekit.stores.errors import PreconditionFailedError

CANCELLED_BY_CLIENT = "Cancelled at the customer's request."


@dataclass(frozen=True)
class ChangeResult:
    """The delivery after the change, and whether the change is decided (False: still pending)."""

    delivery: StoredDelivery
    decided: bool


@dataclass(frozen=True)
class _Decision:
    delivery: StoredDelivery | None
    """What to write, or None to write nothing."""
    awaits: str | None = None
    """The change id whose outcome the request waits for."""


class DeliveryChanges:
    def __init__(
        self,
        deliveries: DeliveryRepository,
        leases: Leases,
        kick: Kick,
        settings: DeliverySettings,
    ) -> None:
        self._deliveries = deliveries
        self._leases = leases
        self._kick = kick
        self._settings = settings

    async def cancel(self, delivery_id: str) -> ChangeResult:
        return await self._change(delivery_id, self._cancel)

    async def reschedule(self, delivery_id: str, reschedule: Reschedule) -> ChangeResult:
        return await self._change(delivery_id, lambda d: self._reschedule(d, reschedule))

    async def replace(self, delivery_id: str, request: DeliveryRequest) -> ChangeResult:
        """A PUT of an existing delivery: it may change the plan, nothing else."""
        return await self._change(delivery_id, lambda d: self._replace(d, request))

    def _cancel(self, delivery: StoredDelivery) -> _Decision:
        if delivery.stage is Stage.CANCELLED:
            return _Decision(None)
        _refuse_after_pickup(delivery, "cancelled")
        work = delivery.work
        if delivery.stage is Stage.REQUESTED:
            cancelled = delivery.changed(stage=Stage.CANCELLED).with_event(
                EventKind.CANCELLED, reason=CANCELLED_BY_CLIENT
            )
            compensate = Work(
                goal=Goal.COMPENSATE,
                conclusion=Stage.CANCELLED,
                reason=CANCELLED_BY_CLIENT,
            )
            return _Decision(self._leases.give_work(cancelled, compensate))
        if work is not None and work.goal is Goal.COMPENSATE and work.change_id is not None:
            return _Decision(None, awaits=work.change_id)  # a cancel is being decided already
        change_id = uuid.uuid4().hex
        compensate = Work(
            goal=Goal.COMPENSATE,
            conclusion=Stage.CANCELLED,
            reason=CANCELLED_BY_CLIENT,
            change_id=change_id,
        )
        return _Decision(
            self._leases.give_work(_superseded(delivery), compensate), awaits=change_id
        )

    def _reschedule(self, delivery: StoredDelivery, reschedule: Reschedule) -> _Decision:
        _refuse_after_pickup(delivery, "rescheduled")
        return self._replan(delivery, _changed_plan(delivery.plan, reschedule))

    def _replan(self, delivery: StoredDelivery, plan: Plan) -> _Decision:
        if plan == delivery.plan:
            return _Decision(None)
        work = delivery.work
        if delivery.stage is Stage.REQUESTED:
            if work is None or work.goal is not Goal.SCHEDULE:
                raise Problem(
                    409,
                    "The delivery could not be scheduled and is being undone.",
                    kind="delivery-failing",
                )
            # The workflow sees the new plan at its next step and asks the scheduler for it.
            return _Decision(self._leases.give_work(delivery.changed(plan=plan), work))
        if work is not None and work.goal is not Goal.SCHEDULE:
            raise Problem(
                409,
                "Another change to this delivery is being decided; retry shortly.",
                kind="change-in-progress",
                headers={"Retry-After": "1"},
            )
        # Pending `schedule` work here only finishes the last plan, or restores it after a refused
        # re-plan; proposing the new plan serves both, since a refused proposal restores the plan.
        change_id = uuid.uuid4().hex
        propose = Work(
            goal=Goal.PROPOSE,
            budget_ends_at=time.time() + self._settings.change_wait_seconds,
            proposal=plan,
            change_id=change_id,
        )
        return _Decision(self._leases.give_work(delivery, propose), awaits=change_id)

    def _replace(self, delivery: StoredDelivery, request: DeliveryRequest) -> _Decision:
        package = request.package_info
        unchangeable = {
            "ownerId": request.owner_id != delivery.owner_id,
            "expedited": request.expedited != delivery.expedited,
            "confirmationRequired": request.confirmation_required != delivery.confirmation_required,
            "packageInfo": (package.size, package.weight, package.tag)
            != (delivery.package.size, delivery.package.weight, delivery.package.tag)
            or package.package_id not in (None, delivery.package.id),
        }
        if changed := [name for name, differs in unchangeable.items() if differs]:
            raise Problem(
                409,
                f"A delivery's {', '.join(changed)} cannot change; only its pickup, drop-off, "
                "pickup time and deadline can. Cancel it and request a new delivery instead.",
                kind="delivery-unchangeable",
            )
        fields: dict[str, Any] = {
            "pickup_location": request.pickup_location,
            "drop_off_location": request.drop_off_location,
            "deadline": request.deadline,
        }
        if request.pickup_time is not None:
            fields["pickup_time"] = request.pickup_time
        plan = _changed_plan(delivery.plan, Reschedule.model_construct(**fields))
        if plan == delivery.plan:
            return _Decision(None)  # the same delivery again, whatever its stage
        _refuse_after_pickup(delivery, "rescheduled")
        return self._replan(delivery, plan)

    async def _change(
        self, delivery_id: str, decide: Callable[[StoredDelivery], _Decision]
    ) -> ChangeResult:
        while True:
            current = await self._deliveries.get(delivery_id)
            if current is None:
                raise Problem(404, "No delivery with that id.", kind="delivery-not-found")
            decision = decide(current.delivery)
            if decision.delivery is None:
                stored = current
            else:
                try:
                    stored = await self._deliveries.replace(decision.delivery, current.etag)
                except PreconditionFailedError:
                    continue  # changed meanwhile: decide again on what is stored now
                if self._leases.holds(stored.delivery.work):
                    self._kick(delivery_id)
            if decision.awaits is None:
                return ChangeResult(stored.delivery, decided=True)
            return await self._outcome(stored, decision.awaits)

    async def _outcome(self, stored: Versioned, change_id: str) -> ChangeResult:
        """Wait for the workflow to record how the change ended; raise it when it was refused."""
        delivery = stored.delivery
        give_up_at = (
            time.monotonic()
            + self._settings.change_wait_seconds
            + self._settings.call_deadline_seconds
        )
        pause = 0.02
        while (outcome := delivery.outcome_of(change_id)) is None:
            if time.monotonic() >= give_up_at:
                return ChangeResult(delivery, decided=False)
            # The runner doing the work may be another replica's, so the store is what to watch.
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)
            current = await self._deliveries.get(delivery.id)
            if current is None:  # pragma: no cover - deliveries are never deleted
                raise Problem(404, "No delivery with that id.", kind="delivery-not-found")
            delivery = current.delivery
        if not outcome.applied:
            headers = {}
            if outcome.retry_after is not None:
                headers["Retry-After"] = str(max(1, round(outcome.retry_after)))
            raise Problem(
                outcome.status,
                outcome.detail,
                kind="change-refused",
                title="Change refused",
                headers=headers,
            )
        return ChangeResult(delivery, decided=True)


def _refuse_after_pickup(delivery: StoredDelivery, verb: str) -> None:
    if delivery.stage is Stage.HEADED_TO_DROPOFF:
        raise Problem(
            409,
            f"The drone has picked the package up; the delivery can no longer be {verb}.",
            kind="delivery-picked-up",
        )
    if delivery.stage.is_finished:
        raise Problem(
            409,
            f"The delivery is {delivery.stage.value}; it can no longer be {verb}.",
            kind="delivery-finished",
        )


def _changed_plan(plan: Plan, reschedule: Reschedule) -> Plan:
    sent = reschedule.changes()
    changed = plan.model_copy(
        update={
            name: value
            for name, value in (
                ("pickup", reschedule.pickup_location),
                ("dropoff", reschedule.drop_off_location),
                ("pickup_time", reschedule.pickup_time),
            )
            if value is not None
        }
    )
    if "deadline" in sent:
        changed = changed.model_copy(update={"deadline": reschedule.deadline})
    if {"pickup_time", "deadline"} & sent:
        field = "deadline" if "deadline" in sent else "pickupTime"
        try:
            check_deadline(changed.pickup_time, changed.deadline)
        except ValueError as exc:
            message = str(exc) if field == "deadline" else "must be before the deadline"
            raise invalid_field(field, message) from None
    return changed


def _superseded(delivery: StoredDelivery) -> StoredDelivery:
    """A cancel overrides a reschedule being decided: tell the request waiting for it."""
    work = delivery.work
    if work is None or work.change_id is None:
        return delivery
    return delivery.with_outcome(
        ChangeOutcome(
            id=work.change_id,
            applied=False,
            status=409,
            detail="The delivery was cancelled while the change was being decided.",
        )
    )
