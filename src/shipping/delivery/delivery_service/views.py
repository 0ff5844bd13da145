"""What a client sees of a stored delivery and its events (the stored form carries the workflow's state)."""

from __future__ import annotations

from delivery_service.models import Delivery, Owner, TrackingEvent
from delivery_service.store import StoredDelivery, StoredEvent


def delivery_view(delivery: StoredDelivery) -> Delivery:
    return Delivery(
        id=delivery.id,
        owner=owner_view(delivery),
        pickup=delivery.plan.pickup,
        dropoff=delivery.plan.dropoff,
        pickup_time=delivery.plan.pickup_time,
        deadline=delivery.plan.deadline,
        expedited=delivery.expedited,
        confirmation_required=delivery.confirmation_required,
        package_id=delivery.package.id,
        drone_id=delivery.drone_id,
        stage=delivery.stage,
        pickup_eta=delivery.pickup_eta,
        dropoff_eta=delivery.dropoff_eta,
        failure_reason=delivery.failure_reason,
        created_at=delivery.created_at,
        updated_at=delivery.updated_at,
    )


def owner_view(delivery: StoredDelivery) -> Owner:
    # One owner id names both the user and the account billed: there is no account registry.
    return Owner(user_id=delivery.owner_id, account_id=delivery.owner_id)


def event_view(event: StoredEvent) -> TrackingEvent:
    return TrackingEvent(
        event_id=event.source_event_id or event.id,
        delivery_id=event.delivery_id,
        stage=event.stage,
        time=event.time,
        location=event.location,
        drone_id=event.drone_id,
        pickup_eta=event.pickup_eta,
        dropoff_eta=event.dropoff_eta,
        reason=event.reason,
        confirmation_type=event.confirmation_type,
    )
