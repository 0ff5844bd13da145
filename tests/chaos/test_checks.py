"""The chaos test's check that no drone flew two deliveries at once, on events like those it reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from chaos_support import Findings, _check_drones, drone_flights

START = datetime(2026, 12, 7, 22, 51, tzinfo=UTC)


def at(second: float) -> datetime:
    return START + timedelta(seconds=second)


def report(stage: str, second: float, drone_id: str | None = "drone-001") -> dict[str, Any]:
    return {"stage": stage, "time": at(second).isoformat(), "droneId": drone_id}


def flight(start: float, drone_id: str = "drone-001") -> list[dict[str, Any]]:
    return [
        report("HeadedToPickup", start, drone_id),
        report("HeadedToDropoff", start + 1, drone_id),
        report("Completed", start + 2, drone_id),
    ]


def double_booked(events: dict[str, list[dict[str, Any]]]) -> list[str]:
    findings = Findings()
    completed = {delivery_id: {"stage": "Completed", "droneId": None} for delivery_id in events}
    _check_drones(completed, [], events, findings)
    return findings.double_booked


def test_a_drone_recalled_and_taken_again_later_flew_two_flights() -> None:
    # As in a CI run: the only drone that could carry a large package left for it, was recalled by
    # a reschedule, flew another delivery, and came back for the rescheduled one.
    events = {
        "rescheduled": [report("Created", 0, None), report("HeadedToPickup", 0.5), *flight(30)],
        "between": [report("Created", 5, None), *flight(6)],
    }

    assert sorted(drone_flights(events)["drone-001"]) == [
        (at(0.5), at(0.5), "rescheduled"),
        (at(6), at(8), "between"),
        (at(30), at(32), "rescheduled"),
    ]
    assert double_booked(events) == []


def test_overlapping_flights_of_one_drone_are_double_booked() -> None:
    events = {"first": flight(0), "second": flight(1.5)}

    assert double_booked(events) == [
        f"drone-001 flew first until {at(2).isoformat()} and second from {at(1.5).isoformat()}"
    ]


def test_flights_of_different_drones_may_overlap() -> None:
    events = {"first": flight(0, "drone-001"), "second": flight(1, "drone-002")}

    assert double_booked(events) == []
