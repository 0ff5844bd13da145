"""The delivery outcomes metric: how many deliveries end Completed, Failed (and why) or Cancelled.

Counted where a final event is stored, which happens once per event whatever is retried, so a
delivery is counted once however many replicas or restarts took part in it.
"""

from __future__ import annotations

from opentelemetry import metrics

from delivery_service.models import EventKind
from delivery_service.store import EventRepository, StoredEvent

FINAL_EVENTS = frozenset((EventKind.COMPLETED, EventKind.FAILED, EventKind.CANCELLED))

_finished = metrics.get_meter(__name__).create_counter(
    "delivery.deliveries.finished",
    unit="{delivery}",
    description="Deliveries that reached a final stage, by outcome and failure cause",
)


async def store_event(events: EventRepository, event: StoredEvent) -> None:
    """Store the event, and count it if it ends the delivery and was not stored before."""
    if await events.add(event):
        _count_if_final(event)


def _count_if_final(event: StoredEvent) -> None:
    if event.stage not in FINAL_EVENTS:
        return
    attributes = {"delivery.outcome": event.stage.value}
    if event.cause is not None:
        attributes["delivery.failure.cause"] = event.cause.value
    _finished.add(1, attributes)
