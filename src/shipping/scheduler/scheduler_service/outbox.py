"""The outbox: notifications to the delivery service, kept in the store until it acknowledges them.

A milestone puts its notification here (see `drones`); every replica sends what is due. Per delivery
only the earliest notification is sent, and the next one only once that one is acknowledged, so they
arrive in order. A replica takes a notification for one attempt with a conditional write (a lease),
so replicas do not send it side by side; a failed attempt is retried with exponential backoff for as
long as it takes. Each notification has a stable `eventId`, so a repeat (a lease that ran out while
the post was in flight) takes effect once at the delivery service.

A tick reads only the notifications that are due, the longest due first (an indexed query), and
sends them as fast as the client to the delivery service lets through at once (its
`max_concurrency`), each leased when its post starts: a lease and a post's deadline never run out
while the notification waits for its turn. A due notification whose delivery has an earlier one
waiting for its next attempt is moved back to that attempt's time, so that a delivery service that
is down costs a tick only the notifications whose next attempt has come.

The delivery service acknowledges with 2xx; 404 (no such delivery) and 409 (its stage does not allow
the event, e.g. Cancelled) are final answers too. Anything else, or no answer, is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from opentelemetry import trace

from scheduler_service.flights import utc_now
from scheduler_service.records import NotificationRecord, stored_time
from scheduler_service.store import Repository, Versioned
from servicekit.clients import CallPolicy, DownstreamUnavailableError, ServiceClient
from servicekit.stores.errors import PreconditionFailedError
from servicekit.telemetry import background_span

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

DELIVERY_POLICY = CallPolicy(
    attempt_timeout=2.0,
    deadline=3.0,
    max_attempts=2,
    backoff_initial=0.05,
    backoff_max=0.5,
    breaker_open_seconds=1.0,
    max_concurrency=8,
)
"""One short attempt per send: the outbox itself retries, for as long as it takes. Eight posts at
once keep one delivery service process busy; more only cost the client more per post."""

LEASE = timedelta(seconds=DELIVERY_POLICY.deadline + 1)
FIRST_BACKOFF_SECONDS = 0.25
FINAL_STATUSES = frozenset((404, 409))
BATCH = 500
"""The most notifications one tick reads (the longest due)."""


class Outbox:
    def __init__(
        self,
        notifications: Repository[NotificationRecord],
        delivery_service: ServiceClient,
        *,
        max_backoff_seconds: float,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._notifications = notifications
        self._delivery_service = delivery_service
        self._max_backoff = max_backoff_seconds
        self._clock = clock

    async def send_due(self) -> None:
        now = self._clock()
        due = await self._notifications.query(
            ("nextAttemptAt", "<=", stored_time(now)), order_by="nextAttemptAt", limit=BATCH
        )
        earliest: dict[str, Versioned[NotificationRecord]] = {}
        for found in due:
            known = earliest.get(found.record.delivery_id)
            if known is None or found.record.order_key < known.record.order_key:
                earliest[found.record.delivery_id] = found
        senders = asyncio.Semaphore(self._delivery_service.policy.max_concurrency)

        async def send(found: Versioned[NotificationRecord]) -> None:
            async with senders:
                first = await self._first_of(found, now)
                if first is not None:
                    await self._send(first)

        await asyncio.gather(*(send(found) for found in earliest.values()))

    async def _first_of(
        self, found: Versioned[NotificationRecord], now: datetime
    ) -> Versioned[NotificationRecord] | None:
        """What to send for the due notification's delivery now: the notification itself if no
        earlier one waits; an earlier one if that is due too; None while an earlier one is being
        sent (it is looked at again next tick) or waits for its next attempt, which the due one
        then waits for too, so that it is not read again until then."""
        record = found.record
        earlier = await self._notifications.query(
            ("orderKey", "<", record.order_key),
            partition=record.delivery_id,
            order_by="orderKey",
            limit=1,
        )
        if not earlier:
            return found
        first = earlier[0].record
        if first.next_attempt_at <= now:
            return earlier[0]
        if not first.sending:
            behind = record.model_copy(update={"next_attempt_at": first.next_attempt_at})
            with contextlib.suppress(PreconditionFailedError):  # another replica has moved it
                await self._notifications.replace(found, behind)
        return None

    async def _send(self, found: Versioned[NotificationRecord]) -> None:
        record = found.record
        attempt = record.model_copy(
            update={
                "attempts": record.attempts + 1,
                "next_attempt_at": self._clock() + LEASE,
                "sending": True,
            }
        )
        try:
            leased = await self._notifications.replace(found, attempt)
        except PreconditionFailedError:
            return  # another replica is sending it
        path = f"/api/deliveries/{record.delivery_id}/{record.route}"
        try:
            with background_span(
                tracer,
                f"scheduler notify {record.route}",
                record.traceparent,
                {"delivery.id": record.delivery_id, "scheduler.notification.id": record.id},
            ):
                response = await self._delivery_service.post(path, json=record.body)
        except DownstreamUnavailableError as exc:
            outcome = exc.reason
        else:
            if response.is_success or response.status_code in FINAL_STATUSES:
                if not response.is_success:
                    log.info("%s answered %d; dropping %s", path, response.status_code, record.id)
                await self._notifications.delete(record.id, record.delivery_id)
                return
            outcome = f"HTTP {response.status_code}"
        backoff = self._backoff(record.attempts)
        log.info(
            "notification %s to %s not acknowledged (%s); next attempt in %.1f s",
            record.id,
            path,
            outcome,
            backoff,
        )
        retry = attempt.model_copy(
            update={"next_attempt_at": self._clock() + timedelta(seconds=backoff), "sending": False}
        )
        with contextlib.suppress(
            PreconditionFailedError
        ):  # the lease ran out: another replica has it
            await self._notifications.replace(leased, retry)

    def _backoff(self, attempts: int) -> float:
        ceiling = min(self._max_backoff, FIRST_BACKOFF_SECONDS * 2 ** min(attempts, 16))
        return random.uniform(ceiling / 2, ceiling)
