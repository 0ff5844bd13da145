"""The scheduling workflow: the steps that take a delivery from its request to a drone, or undo them.

A delivery with pending work (`work`) has a goal:
- `schedule`: decide whether the package is this delivery's own, register it, and make the
  scheduler's assignment match the delivery's plan; record `Scheduled` (or `Rescheduled`);
- `propose`: ask the scheduler to re-plan for a reschedule; adopt the new plan if it agrees, keep the
  old one if not (and make sure the scheduler holds the old one again);
- `compensate`: release the drone, delete the package if this delivery created it, and end
  `Cancelled` or `Failed`.

`Workflow.run` repeats: read the delivery, do the next step of its goal (at most one call to a
neighbour), write the result as a checkpoint on the ETag it read. Every step is idempotent, so a
crash anywhere repeats at most the step in flight. When the checkpoint fails on the ETag, somebody
changed the delivery meanwhile (a cancel, a reschedule, a tracking event): the workflow drops its
result and starts over from what is stored, and the current goal decides what to do, which
includes undoing what the lost step just did (compensation releases whatever may be held).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import datetime

from opentelemetry import trace

from delivery_service.leases import Leases
from delivery_service.models import EventKind, Stage
from delivery_service.neighbours import (
    DroneDeliveryRequest,
    PackageAboard,
    PackageDetail,
    PackageRegistration,
    PackageService,
    Refused,
    SchedulerService,
    TryLater,
)
from delivery_service.outcomes import store_event
from delivery_service.settings import DeliverySettings
from delivery_service.store import (
    ChangeOutcome,
    DeliveryRepository,
    EventRepository,
    FailureCause,
    Goal,
    Plan,
    StoredDelivery,
    Versioned,
    Work,
    digest,
    utc_now,
)
from servicekit.stores.errors import PreconditionFailedError, StoreUnavailableError
from servicekit.telemetry import background_span

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

PICKED_UP = "The drone has already picked the package up."


def drone_request(delivery: StoredDelivery, plan: Plan) -> DroneDeliveryRequest:
    return DroneDeliveryRequest(
        delivery_id=delivery.id,
        owner_id=delivery.owner_id,
        pickup=plan.pickup,
        dropoff=plan.dropoff,
        pickup_time=plan.pickup_time,
        expedited=delivery.expedited,
        package_detail=PackageDetail(
            id=delivery.package.id, size=delivery.package.size, weight=delivery.package.weight
        ),
    )


def plan_fingerprint(request: DroneDeliveryRequest) -> str:
    """Identifies what the scheduler was asked for: equal fingerprints, equal assignment requests."""
    return digest(request.model_dump(mode="json"))


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


class Workflow:
    def __init__(
        self,
        deliveries: DeliveryRepository,
        events: EventRepository,
        packages: PackageService,
        scheduler: SchedulerService,
        leases: Leases,
        settings: DeliverySettings,
    ) -> None:
        self._deliveries = deliveries
        self._events = events
        self._packages = packages
        self._scheduler = scheduler
        self._leases = leases
        self._settings = settings

    async def run(self, delivery_id: str, wake: asyncio.Event) -> None:
        """Work on the delivery while it has work and this replica holds its lease.

        `wake` cuts a wait short: it is set when this replica changed the delivery's work.
        """
        failures = 0
        # The version this replica just wrote, when the next step may start from it: nobody has
        # woken the runner since. A change by someone else meanwhile fails the next checkpoint on
        # the ETag, as a change during a step does, and the step is then decided again.
        written: Versioned | None = None
        while True:
            if wake.is_set():
                written = None
            wake.clear()
            try:
                current = written or await self._deliveries.get(delivery_id)
                written = None
                if current is None or not self._leases.holds(current.delivery.work):
                    return
                delivery = await self._flush_outbox(current.delivery)
            except StoreUnavailableError as exc:
                failures += 1
                log.warning("delivery %s: the store is unavailable: %s", delivery_id, exc)
                await self._pause(self._backoff(failures), wake)
                continue

            work = delivery.work
            assert work is not None
            with background_span(
                tracer,
                f"delivery workflow {work.goal.value}",
                work.traceparent,
                {"delivery.id": delivery_id, "delivery.stage": delivery.stage.value},
            ):
                pause = 0.0
                try:
                    updated = await self._advance(delivery)
                    failures = 0
                except TryLater as later:
                    failures += 1
                    updated, pause = self._after_try_later(delivery, later, failures)

                try:
                    saved = await self._deliveries.replace(
                        self._leases.renewed(updated), current.etag
                    )
                except PreconditionFailedError:
                    log.info(
                        "delivery %s changed meanwhile; continuing from what is stored", delivery_id
                    )
                    continue
                except StoreUnavailableError as exc:
                    failures += 1
                    log.warning("delivery %s: checkpoint not written: %s", delivery_id, exc)
                    pause = self._backoff(failures)
                else:
                    if saved.delivery.work is None:
                        return
                    written = saved
            if pause > 0:
                written = None
                await self._pause(pause, wake)

    async def _flush_outbox(self, delivery: StoredDelivery) -> StoredDelivery:
        """Copy the recorded events to their container; the next checkpoint empties the outbox."""
        if not delivery.outbox:
            return delivery
        for event in delivery.outbox:
            await store_event(self._events, event)
        return delivery.model_copy(update={"outbox": []})

    async def _advance(self, delivery: StoredDelivery) -> StoredDelivery:
        """Do the next step of the delivery's goal; answer the delivery as it is after the step."""
        work = delivery.work
        assert work is not None
        if delivery.stage in (Stage.HEADED_TO_DROPOFF, Stage.COMPLETED):
            # The package is aboard or delivered: the flight goes on as planned, nothing to change.
            return self._refused_change(delivery.changed(work=None), work, 409, PICKED_UP)
        match work.goal:
            case Goal.SCHEDULE:
                return await self._schedule(delivery)
            case Goal.PROPOSE:
                return await self._propose(delivery, work)
            case Goal.COMPENSATE:
                return await self._compensate(delivery, work)

    # -- schedule ------------------------------------------------------------------------------

    async def _schedule(self, delivery: StoredDelivery) -> StoredDelivery:
        progress = delivery.progress
        if progress.package_owned is None:
            # Decided before the package is registered, so that a crash after registering it
            # cannot make this delivery mistake its own package for somebody else's.
            try:
                existed = await self._packages.exists(delivery.package.id)
            except Refused as refused:
                return self._failing(
                    delivery,
                    FailureCause.PACKAGE_REFUSED,
                    f"The package was refused: {refused.reason}",
                )
            return delivery.changed(
                progress=progress.model_copy(update={"package_owned": not existed})
            )
        if not progress.package_registered:
            try:
                await self._packages.register(
                    delivery.package.id,
                    PackageRegistration(
                        size=delivery.package.size,
                        weight=delivery.package.weight,
                        tag=delivery.package.tag,
                        owner_id=delivery.owner_id,
                    ),
                )
            except Refused as refused:
                return self._failing(
                    delivery,
                    FailureCause.PACKAGE_REFUSED,
                    f"The package was refused: {refused.reason}",
                )
            # From the next step on a drone may be held for this delivery: say so first.
            return delivery.changed(
                progress=progress.model_copy(
                    update={"package_registered": True, "assignment_requested": True}
                )
            )
        request = drone_request(delivery, delivery.plan)
        fingerprint = plan_fingerprint(request)
        if progress.assigned_plan != fingerprint:
            return await self._assign(delivery, request, fingerprint)
        return delivery.changed(work=None)

    async def _assign(
        self, delivery: StoredDelivery, request: DroneDeliveryRequest, fingerprint: str
    ) -> StoredDelivery:
        plan = delivery.plan
        asked_at = utc_now()  # the Scheduled event's time: never after the scheduler's own events
        try:
            assignment = await self._scheduler.assign(request)
        except PackageAboard:
            # The drone already carries the package: the flight goes on as the scheduler has it.
            return self._assigned_plan(delivery, fingerprint)
        except Refused as refused:
            return self._failing(
                delivery,
                FailureCause.UNDELIVERABLE,
                f"No drone can fly this delivery: {refused.reason}",
            )
        assigned = self._assigned_plan(delivery, fingerprint).changed(
            drone_id=assignment.drone_id,
            pickup_eta=assignment.pickup_eta,
            dropoff_eta=assignment.dropoff_eta,
            distance_km=assignment.distance_km,
        )
        if plan.deadline is not None and assignment.dropoff_eta > plan.deadline:
            return self._failing(
                assigned,
                FailureCause.DEADLINE,
                f"The earliest drop-off, {iso(assignment.dropoff_eta)}, is after the deadline, "
                f"{iso(plan.deadline)}.",
            )
        etas = {"pickup_eta": assignment.pickup_eta, "dropoff_eta": assignment.dropoff_eta}
        if delivery.drone_id is None:  # the first assignment
            if delivery.stage is Stage.REQUESTED:
                assigned = assigned.changed(stage=Stage.SCHEDULED)
            return assigned.with_event(
                EventKind.SCHEDULED, time=asked_at, drone_id=assignment.drone_id, **etas
            )
        if (assignment.drone_id, assignment.pickup_eta, assignment.dropoff_eta) != (
            delivery.drone_id,
            delivery.pickup_eta,
            delivery.dropoff_eta,
        ):
            return assigned.with_event(
                EventKind.RESCHEDULED, time=asked_at, drone_id=assignment.drone_id, **etas
            )
        return assigned

    @staticmethod
    def _assigned_plan(delivery: StoredDelivery, fingerprint: str | None) -> StoredDelivery:
        return delivery.changed(
            progress=delivery.progress.model_copy(update={"assigned_plan": fingerprint})
        )

    # -- propose -------------------------------------------------------------------------------

    async def _propose(self, delivery: StoredDelivery, work: Work) -> StoredDelivery:
        proposal = work.proposal
        assert proposal is not None
        request = drone_request(delivery, proposal)
        fingerprint = plan_fingerprint(request)
        asked_at = utc_now()
        try:
            assignment = await self._scheduler.assign(request)
        except PackageAboard:
            # The scheduler kept the plan it had: nothing to restore.
            return self._refuse(delivery, 409, PICKED_UP, delivery.progress.assigned_plan)
        except Refused as refused:
            # Whether the scheduler still holds the old plan is unknown: PUT it again.
            return self._refuse(delivery, 422, f"No drone can fly the new plan: {refused.reason}")
        if proposal.deadline is not None and assignment.dropoff_eta > proposal.deadline:
            return self._refuse(
                delivery,
                422,
                f"With the new plan the earliest drop-off, {iso(assignment.dropoff_eta)}, would be "
                f"after the deadline, {iso(proposal.deadline)}.",
                fingerprint,
            )
        adopted = self._assigned_plan(delivery, fingerprint).changed(
            plan=proposal,
            drone_id=assignment.drone_id,
            pickup_eta=assignment.pickup_eta,
            dropoff_eta=assignment.dropoff_eta,
            distance_km=assignment.distance_km,
            work=self._scheduling(work),
        )
        if work.change_id is not None:
            adopted = adopted.with_outcome(
                ChangeOutcome(id=work.change_id, applied=True, status=200)
            )
        return adopted.with_event(
            EventKind.RESCHEDULED,
            time=asked_at,
            drone_id=assignment.drone_id,
            pickup_eta=assignment.pickup_eta,
            dropoff_eta=assignment.dropoff_eta,
        )

    def _refuse(
        self,
        delivery: StoredDelivery,
        status: int,
        detail: str,
        assigned_plan: str | None = None,
        *,
        retry_after: float | None = None,
    ) -> StoredDelivery:
        """Drop the proposal and keep the plan; the schedule goal brings the scheduler back to it."""
        work = delivery.work
        assert work is not None
        refused = self._assigned_plan(delivery, assigned_plan).changed(work=self._scheduling(work))
        if work.change_id is None:
            return refused
        return refused.with_outcome(
            ChangeOutcome(
                id=work.change_id,
                applied=False,
                status=status,
                detail=detail,
                retry_after=retry_after,
            )
        )

    def _scheduling(self, work: Work) -> Work:
        return Work(
            goal=Goal.SCHEDULE,
            lease_owner=work.lease_owner,
            lease_expires_at=work.lease_expires_at,
            budget_ends_at=time.time() + self._settings.scheduling_budget_seconds,
        )

    # -- compensate ----------------------------------------------------------------------------

    async def _compensate(self, delivery: StoredDelivery, work: Work) -> StoredDelivery:
        progress = delivery.progress
        if progress.assignment_requested and not progress.drone_released:
            try:
                await self._scheduler.release(delivery.id)
            except PackageAboard:
                if work.conclusion is Stage.CANCELLED and delivery.stage.has_drone_assigned:
                    return self._refused_change(delivery.changed(work=None), work, 409, PICKED_UP)
                log.warning(
                    "delivery %s: its drone has the package, it cannot be released", delivery.id
                )
            except Refused as refused:
                log.warning("delivery %s: the drone was not released: %s", delivery.id, refused)
            released = delivery.changed(
                progress=progress.model_copy(update={"drone_released": True})
            )
            if work.conclusion is Stage.CANCELLED and delivery.stage.has_drone_assigned:
                return self._cancelled(released, work)
            return released
        if progress.package_owned and not progress.package_deleted:
            try:
                await self._packages.delete(delivery.package.id)
            except Refused as refused:
                log.warning("delivery %s: the package was not deleted: %s", delivery.id, refused)
            return delivery.changed(progress=progress.model_copy(update={"package_deleted": True}))
        if not delivery.stage.is_finished:
            if work.conclusion is Stage.CANCELLED:
                return self._cancelled(delivery, work)
            return delivery.changed(stage=Stage.FAILED, failure_reason=work.reason).with_event(
                EventKind.FAILED, reason=work.reason, cause=work.cause
            )
        return delivery.changed(work=None)

    @staticmethod
    def _cancelled(delivery: StoredDelivery, work: Work) -> StoredDelivery:
        cancelled = delivery.changed(stage=Stage.CANCELLED).with_event(
            EventKind.CANCELLED, reason=work.reason
        )
        if work.change_id is None:
            return cancelled
        return cancelled.with_outcome(ChangeOutcome(id=work.change_id, applied=True, status=204))

    @staticmethod
    def _refused_change(
        delivery: StoredDelivery, work: Work, status: int, detail: str
    ) -> StoredDelivery:
        if work.change_id is None:
            return delivery
        return delivery.with_outcome(
            ChangeOutcome(id=work.change_id, applied=False, status=status, detail=detail)
        )

    def _failing(
        self, delivery: StoredDelivery, cause: FailureCause, reason: str
    ) -> StoredDelivery:
        """A permanent failure: undo what was done, then end `Failed` with `reason`."""
        work = delivery.work
        assert work is not None
        log.info("delivery %s fails: %s", delivery.id, reason)
        return delivery.changed(
            work=Work(
                goal=Goal.COMPENSATE,
                lease_owner=work.lease_owner,
                lease_expires_at=work.lease_expires_at,
                conclusion=Stage.FAILED,
                reason=reason,
                cause=cause,
            )
        )

    # -- waiting -------------------------------------------------------------------------------

    def _after_try_later(
        self, delivery: StoredDelivery, later: TryLater, failures: int
    ) -> tuple[StoredDelivery, float]:
        """The neighbour cannot serve now: wait and ask again, or give up when the budget is spent."""
        work = delivery.work
        assert work is not None
        now = time.time()
        if work.budget_ends_at is not None and now >= work.budget_ends_at:
            if work.goal is Goal.PROPOSE:
                return self._refuse(
                    delivery,
                    503,
                    f"The new plan could not be scheduled in time: {later.reason}.",
                    retry_after=self._settings.retry_max_seconds,
                ), 0.0
            budget = self._settings.scheduling_budget_seconds
            return self._failing(
                delivery,
                FailureCause.BUDGET_SPENT,
                f"Could not be scheduled within {budget:g} s: {later.reason}.",
            ), 0.0
        log.info("delivery %s waits: %s", delivery.id, later.reason)
        pause = min(later.after or self._backoff(failures), self._settings.retry_max_seconds)
        if work.budget_ends_at is not None:
            pause = min(pause, work.budget_ends_at - now)
        return delivery, max(pause, 0.0)

    def _backoff(self, failures: int) -> float:
        ceiling = min(
            self._settings.retry_max_seconds,
            self._settings.retry_initial_seconds * 2 ** min(failures - 1, 16),
        )
        return random.uniform(ceiling / 2, ceiling)

    @staticmethod
    async def _pause(seconds: float, wake: asyncio.Event) -> None:
        try:
            async with asyncio.timeout(seconds):
                await wake.wait()
        except TimeoutError:
            pass
