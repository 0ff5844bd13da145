"""The outbox on a real store, posting to a real HTTP server: what a tick sends, and in what order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from scheduler_harness import scheduler_settings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scheduler_service.outbox import LEASE, Outbox
from scheduler_service.records import NotificationRecord, stored_time
from scheduler_service.store import Repository, open_scheduler_store
from servicekit.clients import CallPolicy, ServiceClient
from servicekit.testing import serve_in_thread

NOW = datetime(2026, 11, 26, 14, 30, tzinfo=UTC)


@dataclass
class SlowDeliveryService:
    """Acknowledges every notification after `delay` seconds, and records the eventIds in order."""

    delay: float = 0.0
    received: list[str] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        body = await request.json()
        await asyncio.sleep(self.delay)
        self.received.append(body["eventId"])
        return Response(status_code=204)

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/api/deliveries/{id}/events", self.handle, methods=["POST"])]
        )


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def notifications(tmp_path: Path) -> AsyncIterator[Repository[NotificationRecord]]:
    async with open_scheduler_store(scheduler_settings(tmp_path)) as store:
        yield store.notifications


def notification(
    id: str,
    delivery_id: str,
    *,
    milestone: int,
    due: datetime = NOW,
    attempts: int = 0,
    sending: bool = False,
) -> NotificationRecord:
    planned = NOW - timedelta(minutes=1)
    return NotificationRecord(
        id=id,
        delivery_id=delivery_id,
        route="events",
        body={"eventId": id},
        order_key=f"{stored_time(planned + timedelta(seconds=milestone))}/{milestone}",
        attempts=attempts,
        next_attempt_at=due,
        sending=sending,
    )


async def test_a_tick_sends_everything_due_without_running_out_the_deadline_of_any(
    notifications: Repository[NotificationRecord],
) -> None:
    # Two posts at once, each taking a fifth of its deadline: twenty due at once take four
    # deadlines to send, so each may wait for its turn only outside its deadline.
    policy = CallPolicy(attempt_timeout=0.5, deadline=0.5, max_attempts=1, max_concurrency=2)
    delivery_service = SlowDeliveryService(delay=0.1)
    for n in range(20):
        await notifications.create(notification(f"event-{n}", f"delivery-{n}", milestone=0))
    with serve_in_thread(delivery_service.app()) as url:
        async with ServiceClient("delivery", url, policy) as client:
            await Outbox(notifications, client, max_backoff_seconds=1).send_due()

    assert sorted(delivery_service.received) == sorted(f"event-{n}" for n in range(20))
    assert await notifications.count() == 0, "every one acknowledged in one tick"


async def test_a_due_notification_waits_for_an_earlier_one_of_its_delivery(
    notifications: Repository[NotificationRecord],
) -> None:
    clock = Clock()
    later = NOW + timedelta(seconds=10)
    await notifications.create(notification("pickup-1", "d1", milestone=0, attempts=3, due=later))
    await notifications.create(notification("dropoff-1", "d1", milestone=1))
    await notifications.create(notification("pickup-2", "d2", milestone=0))
    delivery_service = SlowDeliveryService()
    with serve_in_thread(delivery_service.app()) as url:
        async with ServiceClient("delivery", url) as client:
            outbox = Outbox(notifications, client, max_backoff_seconds=1, clock=clock)

            await outbox.send_due()
            await outbox.send_due()
            assert delivery_service.received == ["pickup-2"], "d1's drop-off waits"

            clock.now = later
            await outbox.send_due()
            await outbox.send_due()

    assert delivery_service.received == ["pickup-2", "pickup-1", "dropoff-1"]
    assert await notifications.count() == 0


async def test_while_an_earlier_one_backs_off_a_later_one_is_not_due(
    notifications: Repository[NotificationRecord],
) -> None:
    later = NOW + timedelta(seconds=10)
    await notifications.create(notification("pickup-1", "d1", milestone=0, attempts=3, due=later))
    await notifications.create(notification("dropoff-1", "d1", milestone=1))
    with serve_in_thread(SlowDeliveryService().app()) as url:
        async with ServiceClient("delivery", url) as client:
            await Outbox(notifications, client, max_backoff_seconds=1, clock=Clock()).send_due()

    assert await notifications.count(("nextAttemptAt", "<=", stored_time(NOW))) == 0, (
        "the drop-off waits for the pickup's next attempt, out of the way of what is due"
    )


async def test_a_later_one_waits_for_an_earlier_one_being_sent_a_tick_not_its_lease(
    notifications: Repository[NotificationRecord],
) -> None:
    in_flight = notification("pickup-1", "d1", milestone=0, attempts=1, sending=True)
    await notifications.create(in_flight.model_copy(update={"next_attempt_at": NOW + LEASE}))
    await notifications.create(notification("dropoff-1", "d1", milestone=1))
    delivery_service = SlowDeliveryService()
    with serve_in_thread(delivery_service.app()) as url:
        async with ServiceClient("delivery", url) as client:
            outbox = Outbox(notifications, client, max_backoff_seconds=1, clock=Clock())

            await outbox.send_due()
            assert delivery_service.received == [], "the pickup is being sent (by another replica)"

            await notifications.delete("pickup-1", "d1")  # which it acknowledged meanwhile
            await outbox.send_due()

    assert delivery_service.received == ["dropoff-1"]
