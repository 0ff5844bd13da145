"""Stored times: fixed-width UTC text, so that the store's text comparisons order them as times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from scheduler_service.geo import GeoPoint
from scheduler_service.records import Stop, StopKind, stored_time

NOW = datetime(2026, 11, 26, 14, 30, tzinfo=UTC)
PARIS = timezone(timedelta(hours=1))


def test_stored_times_are_fixed_width_utc_and_order_as_the_times() -> None:
    times = [
        datetime(2026, 11, 26, 14, 30, tzinfo=UTC),  # no microseconds
        datetime(2026, 11, 26, 15, 30, 0, 1, tzinfo=PARIS),  # an hour ahead of UTC
        datetime(2026, 11, 26, 14, 30, 0, 2, tzinfo=UTC),
        datetime(2026, 11, 26, 14, 30, 59, 999999, tzinfo=UTC),
    ]

    texts = [stored_time(moment) for moment in times]

    assert texts[:2] == ["2026-11-26T14:30:00.000000Z", "2026-11-26T14:30:00.000001Z"]
    assert {len(text) for text in texts} == {27}
    assert sorted(texts) == texts


def test_a_time_read_back_is_stored_as_it_was() -> None:
    stop = Stop(kind=StopKind.PICKUP, location=GeoPoint(47.6, -122.3), at=NOW)

    read_back = Stop.model_validate(stop.as_document())

    assert (
        read_back.as_document()["at"] == stop.as_document()["at"] == "2026-11-26T14:30:00.000000Z"
    )
