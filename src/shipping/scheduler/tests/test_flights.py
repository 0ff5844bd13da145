"""Flights by the clock and the steps a drone goes through: pure functions, no store, no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduler_service.drones import (
    DroneBusyError,
    PackageAboardError,
    claim,
    due_stop,
    location_of,
    pass_stop,
    recall,
    status_of,
    without_pending,
)
from scheduler_service.flights import plan_delivery, position, progress
from scheduler_service.geo import KM_PER_MILE, GeoPoint, distance_km
from scheduler_service.models import AssignmentRequest, DroneStatus, PackageSize
from scheduler_service.records import DroneRecord, FlightPlan, StopKind

NOW = datetime(2026, 11, 26, 14, 30, tzinfo=UTC)
BASE = GeoPoint(47.6062, -122.3321)
KM = 1 / 111.195


def seconds(n: float) -> datetime:
    return NOW + timedelta(seconds=n)


def north(km: float) -> GeoPoint:
    return GeoPoint(BASE.latitude + km * KM, BASE.longitude)


@pytest.fixture
def drone() -> DroneRecord:
    return DroneRecord(
        id="drone-042",
        model="test",
        max_payload_kg=5,
        max_size=PackageSize.MEDIUM,
        speed_kmh=60,
        range_km=30,
        base=BASE,
    )


@pytest.fixture
def plan(drone: DroneRecord) -> FlightPlan:
    """Leaves at NOW; pickup 3 km north at +3 s, drop-off 7 km north at +7 s, home at +14 s."""
    request = AssignmentRequest.model_validate(
        {
            "deliveryId": "d1",
            "ownerId": "o1",
            "pickup": {"latitude": north(3).latitude, "longitude": BASE.longitude},
            "dropoff": {"latitude": north(7).latitude, "longitude": BASE.longitude},
            "packageDetail": {"id": "p1", "size": "Small", "weight": 2},
            "confirmationRequired": "picture",
        }
    )
    return plan_delivery(drone, request, now=NOW, speedup=60)


@pytest.fixture
def claimed(drone: DroneRecord, plan: FlightPlan) -> DroneRecord:
    result = claim(drone, plan, now=NOW)
    assert result is not None
    return result


def test_the_drone_moves_along_its_route_by_the_clock(plan: FlightPlan) -> None:
    assert position(plan, seconds(-1)) == BASE
    assert distance_km(position(plan, seconds(1.5)), north(1.5)) < 0.01
    assert distance_km(position(plan, seconds(5)), north(5)) < 0.01
    assert distance_km(position(plan, seconds(10.5)), north(3.5)) < 0.01
    assert position(plan, seconds(20)) == BASE


def test_progress_is_the_share_of_the_route_flown(plan: FlightPlan) -> None:
    assert progress(plan, seconds(-1)) == 0
    assert progress(plan, seconds(7)) == pytest.approx(0.5, abs=0.01)
    assert progress(plan, seconds(14 * 0.75)) == pytest.approx(0.75, abs=0.01)
    assert progress(plan, seconds(60)) == 1


def test_a_claim_reserves_a_free_drone_for_the_plan(
    drone: DroneRecord, plan: FlightPlan, claimed: DroneRecord
) -> None:
    assert drone.flight is None, "the step leaves the version it was given alone"
    assert claimed.delivery_id == "d1"
    assert claimed.flight == plan
    assert claimed.next_milestone_at == plan.stops[0].at
    assert claim(claimed, plan, now=NOW) is None, "claiming again for the same plan is done"


def test_a_claimed_drone_cannot_be_claimed_for_another_plan(
    drone: DroneRecord, claimed: DroneRecord
) -> None:
    other = plan_delivery(
        drone,
        AssignmentRequest.model_validate(
            {
                "deliveryId": "d2",
                "ownerId": "o1",
                "pickup": {"latitude": BASE.latitude, "longitude": BASE.longitude},
                "dropoff": {"latitude": north(1).latitude, "longitude": BASE.longitude},
                "packageDetail": {"id": "p2", "size": "Small", "weight": 1},
            }
        ),
        now=NOW,
        speedup=60,
    )

    with pytest.raises(DroneBusyError):
        claim(claimed, other, now=NOW)


def test_the_drone_status_follows_the_clock(claimed: DroneRecord, drone: DroneRecord) -> None:
    assert status_of(drone, NOW) is DroneStatus.AVAILABLE
    assert status_of(claimed, seconds(-1)) is DroneStatus.RESERVED
    assert status_of(claimed, seconds(1)) is DroneStatus.HEADED_TO_PICKUP
    assert status_of(claimed, seconds(4)) is DroneStatus.HEADED_TO_DROPOFF
    assert status_of(claimed, seconds(8)) is DroneStatus.RETURNING
    assert location_of(drone, NOW) == BASE


def test_a_drone_recalled_before_it_left_is_free_at_once(
    claimed: DroneRecord, plan: FlightPlan
) -> None:
    released = recall(claimed, plan.plan_id, now=seconds(-1), speedup=60)

    assert released is not None
    assert released.flight is None
    assert released.delivery_id is None
    assert released.next_milestone_at is None


def test_a_drone_recalled_in_the_air_flies_home_from_where_it_is(
    claimed: DroneRecord, plan: FlightPlan
) -> None:
    released = recall(claimed, plan.plan_id, now=seconds(2), speedup=60)

    assert released is not None
    assert released.delivery_id is None
    home = released.flight
    assert home is not None
    assert [stop.kind for stop in home.stops] == [StopKind.RECALL, StopKind.LANDING]
    assert distance_km(home.stops[0].location, north(2)) < 0.01
    assert home.stops[1].location == BASE
    assert (home.stops[1].at - seconds(2)).total_seconds() == pytest.approx(2, abs=0.01)
    assert released.next_milestone_at == home.stops[1].at
    assert status_of(released, seconds(3)) is DroneStatus.RETURNING


def test_a_drone_with_the_package_aboard_is_not_recalled(
    claimed: DroneRecord, plan: FlightPlan
) -> None:
    with pytest.raises(PackageAboardError):
        recall(claimed, plan.plan_id, now=seconds(4), speedup=60)
    forced = recall(claimed, plan.plan_id, now=seconds(4), speedup=60, even_aboard=True)
    assert forced is not None
    assert forced.flight is not None
    assert forced.flight.delivery_id is None


def test_recalling_another_plan_changes_nothing(claimed: DroneRecord) -> None:
    assert recall(claimed, "some-other-plan", now=NOW, speedup=60) is None


def test_milestones_produce_the_notifications_and_the_utilization_record(
    claimed: DroneRecord, plan: FlightPlan
) -> None:
    drone = claimed
    produced = []
    for at in (stop.at for stop in plan.stops):
        assert due_stop(drone, at - timedelta(milliseconds=1)) is None, "not before its time"
        assert due_stop(drone, at) is not None
        drone = pass_stop(drone, now=at)
        if drone.pending:
            assert drone.next_milestone_at == at, "what it produced is copied out first"
            produced.extend(drone.pending)
            copied = [(write.container, str(write.document["id"])) for write in drone.pending]
            cleared = without_pending(drone, copied, now=at)
            assert cleared is not None
            drone = cleared

    assert drone.flight is None
    assert drone.delivery_id is None
    assert [(w.container, w.document.get("route")) for w in produced] == [
        ("notifications", "events"),
        ("notifications", "events"),
        ("notifications", "confirmations"),
        ("utilization", None),
    ]
    heading_to_pickup, heading_to_dropoff, confirmation, flight = (w.document for w in produced)
    assert heading_to_pickup["body"]["stage"] == "HeadedToPickup"
    assert heading_to_pickup["body"]["location"] == {
        "latitude": BASE.latitude,
        "longitude": BASE.longitude,
    }
    assert heading_to_dropoff["body"]["stage"] == "HeadedToDropoff"
    assert confirmation["body"]["confirmationType"] == "Picture"
    assert confirmation["body"]["droneId"] == "drone-042"
    assert heading_to_pickup["orderKey"] < heading_to_dropoff["orderKey"] < confirmation["orderKey"]
    assert len({w.document["body"]["eventId"] for w in produced[:3]}) == 3
    assert flight["traveledMiles"] == pytest.approx(14 / KM_PER_MILE, rel=1e-3)
    assert flight["assignedHours"] == pytest.approx(14 / 60, rel=1e-3)
    assert (flight["ownerId"], flight["year"], flight["month"]) == ("o1", 2026, 11)


def test_the_event_ids_are_the_same_whoever_passes_the_milestone(claimed: DroneRecord) -> None:
    one = pass_stop(claimed, now=seconds(0))
    other = pass_stop(claimed, now=seconds(0.5))

    assert one.pending[0].document["id"] == other.pending[0].document["id"]
    assert one.pending[0].document["body"] == other.pending[0].document["body"]


def test_the_delivery_is_released_at_the_drop_off_and_the_drone_at_landing(
    claimed: DroneRecord,
) -> None:
    drone = claimed
    for _ in ("departure", "pickup"):
        drone = pass_stop(drone, now=seconds(15))
    assert drone.delivery_id == "d1"

    drone = pass_stop(drone, now=seconds(15))
    assert drone.delivery_id is None
    assert drone.flight is not None, "it still has to fly home"

    drone = pass_stop(drone, now=seconds(15))
    assert drone.flight is None
    assert status_of(drone, seconds(14)) is DroneStatus.AVAILABLE


def test_an_empty_flight_home_tells_nobody_anything(claimed: DroneRecord, plan: FlightPlan) -> None:
    released = recall(claimed, plan.plan_id, now=seconds(1), speedup=60)
    assert released is not None

    landed = pass_stop(released, now=seconds(5))

    assert landed.flight is None
    assert landed.pending == []
