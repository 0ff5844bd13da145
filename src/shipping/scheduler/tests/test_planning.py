"""The choice of drone, range and ETA arithmetic: pure functions, no store, no server."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scheduler_service.drones import claim
from scheduler_service.fleet import make_fleet
from scheduler_service.flights import flying_time, plan_delivery, route_km
from scheduler_service.geo import EARTH_RADIUS_KM, GeoPoint, distance_km, point_between
from scheduler_service.models import AssignmentRequest, PackageSize
from scheduler_service.planning import (
    FleetIndex,
    NoDroneFreeError,
    UndeliverableError,
    able_drones,
    choose_drone,
    preference,
    reserve_size,
    retry_after,
)
from scheduler_service.records import DroneRecord, StopKind
from scheduler_service.settings import SchedulerSettings

NOW = datetime(2026, 11, 26, 14, 30, tzinfo=UTC)
SEATTLE = GeoPoint(47.6062, -122.3321)
KM = 1 / 111.195  # one kilometre, in degrees of latitude


def north(point: GeoPoint, km: float) -> GeoPoint:
    return GeoPoint(point.latitude + km * KM, point.longitude)


def drone(
    id: str,
    base: GeoPoint = SEATTLE,
    *,
    payload: float = 5,
    size: PackageSize = PackageSize.MEDIUM,
    speed: float = 60,
    range_km: float = 30,
) -> DroneRecord:
    return DroneRecord(
        id=id,
        model="test",
        max_payload_kg=payload,
        max_size=size,
        speed_kmh=speed,
        range_km=range_km,
        base=base,
    )


def request(
    pickup: GeoPoint = SEATTLE, dropoff: GeoPoint | None = None, **fields: Any
) -> AssignmentRequest:
    dropoff = dropoff or north(pickup, 2)
    body: dict[str, Any] = {
        "deliveryId": "d1",
        "ownerId": "o1",
        "pickup": {"latitude": pickup.latitude, "longitude": pickup.longitude},
        "dropoff": {"latitude": dropoff.latitude, "longitude": dropoff.longitude},
        "packageDetail": {"id": "p1", "size": "Small", "weight": 2},
    }
    body.update(fields)
    return AssignmentRequest.model_validate(body)


def busy(d: DroneRecord, landing_in: timedelta = timedelta(minutes=1)) -> DroneRecord:
    """The drone flying a delivery that ends `landing_in` from NOW."""
    plan = plan_delivery(d, request(d.base), now=NOW - timedelta(hours=1), speedup=1)
    plan.stops[-1].at = NOW + landing_in
    claimed = claim(d, plan, now=NOW)
    assert claimed is not None
    return claimed


def test_distance_is_the_great_circle_distance() -> None:
    one_degree = 2 * 3.141592653589793 * EARTH_RADIUS_KM / 360
    space_needle, pike_place = GeoPoint(47.6205, -122.3493), GeoPoint(47.6097, -122.3422)

    assert distance_km(GeoPoint(0, 0), GeoPoint(1, 0)) == pytest.approx(one_degree)
    assert distance_km(GeoPoint(0, 0), GeoPoint(0, 1)) == pytest.approx(one_degree)
    assert distance_km(space_needle, pike_place) == pytest.approx(1.31, abs=0.01)
    assert distance_km(SEATTLE, SEATTLE) == 0


def test_a_point_between_lies_on_the_way() -> None:
    a, b = SEATTLE, GeoPoint(47.70, -122.20)

    middle = point_between(a, b, 0.5)

    assert distance_km(a, middle) == pytest.approx(distance_km(a, b) / 2, rel=1e-6)
    assert distance_km(middle, b) == pytest.approx(distance_km(a, b) / 2, rel=1e-6)
    assert distance_km(point_between(a, b, 0), a) == pytest.approx(0, abs=1e-9)
    assert distance_km(point_between(a, b, 1), b) == pytest.approx(0, abs=1e-9)


def test_the_route_is_the_round_trip_from_the_base() -> None:
    base = SEATTLE
    pickup, dropoff = north(base, 3), north(base, 7)

    assert route_km(base, pickup, dropoff) == pytest.approx(3 + 4 + 7, rel=1e-3)


def test_flying_time_is_distance_over_speed_scaled_by_the_speedup() -> None:
    assert flying_time(30, 60, 1) == timedelta(minutes=30)
    assert flying_time(30, 60, 60) == timedelta(seconds=30)


def test_a_plan_leaves_now_and_reaches_each_stop_at_the_drones_speed() -> None:
    d = drone("d", speed=60)
    job = request(north(SEATTLE, 3), north(SEATTLE, 7))

    plan = plan_delivery(d, job, now=NOW, speedup=60)

    assert [stop.kind for stop in plan.stops] == [
        StopKind.DEPARTURE,
        StopKind.PICKUP,
        StopKind.DROPOFF,
        StopKind.LANDING,
    ]
    times = [(stop.at - NOW).total_seconds() for stop in plan.stops]
    assert times == pytest.approx([0, 3, 7, 14], abs=0.02)  # 1 km a second at 60 km/h x 60


def test_a_later_pickup_time_delays_departure_to_arrive_just_in_time() -> None:
    d = drone("d", speed=60)
    later = NOW + timedelta(minutes=10)

    plan = plan_delivery(d, request(north(SEATTLE, 3), pickup_time=later), now=NOW, speedup=60)

    assert plan.stops[1].at == later
    assert (later - plan.stops[0].at).total_seconds() == pytest.approx(3, abs=0.01)


def test_a_past_pickup_time_means_as_soon_as_possible() -> None:
    plan = plan_delivery(
        drone("d"), request(pickup_time=NOW - timedelta(days=1)), now=NOW, speedup=60
    )

    assert plan.stops[0].at == NOW


def test_the_nearest_free_capable_drone_is_chosen() -> None:
    near, far = drone("near", north(SEATTLE, -1)), drone("far", north(SEATTLE, -5))
    nearest_but_busy = busy(drone("busy", SEATTLE))

    chosen = choose_drone([far, nearest_but_busy, near], request(), now=NOW, reserve_share=0)

    assert chosen.id == "near"


def test_drones_that_cannot_carry_the_package_are_passed_over() -> None:
    small = drone("small", SEATTLE, payload=25, size=PackageSize.SMALL)
    weak = drone("weak", SEATTLE, payload=4, size=PackageSize.LARGE)
    able = drone("able", north(SEATTLE, -8), payload=10, size=PackageSize.LARGE)
    job = request(packageDetail={"id": "p", "size": "Large", "weight": 8})

    assert choose_drone([small, weak, able], job, now=NOW, reserve_share=0).id == "able"


def test_drones_that_cannot_fly_the_round_trip_are_passed_over() -> None:
    short = drone("short", SEATTLE, range_km=3.9)  # the trip is 2 + 2 km
    enough = drone("enough", north(SEATTLE, -0.5), range_km=5.5)

    assert choose_drone([short, enough], request(), now=NOW, reserve_share=0).id == "enough"


def test_of_drones_equally_near_the_lightest_lifter_is_chosen() -> None:
    heavy = drone("a-heavy", payload=25, size=PackageSize.LARGE)
    light = drone("b-light", payload=3, size=PackageSize.SMALL)

    assert choose_drone([heavy, light], request(), now=NOW, reserve_share=0).id == "b-light"


@pytest.mark.parametrize(
    ("package", "reason"),
    [
        ({"id": "p", "size": "Small", "weight": 30}, "largest payload is 25 kg"),
        ({"id": "p", "size": "Large", "weight": 5}, "takes Large packages"),
        ({"id": "p", "size": "Medium", "weight": 20}, "Medium package of 20 kg"),
    ],
)
def test_a_package_no_drone_can_carry_is_undeliverable(
    package: dict[str, Any], reason: str
) -> None:
    fleet = [
        drone("light-big", payload=6, size=PackageSize.MEDIUM),
        drone("heavy-small", payload=25, size=PackageSize.SMALL),
    ]

    with pytest.raises(UndeliverableError, match=reason):
        choose_drone(fleet, request(packageDetail=package), now=NOW, reserve_share=0)


def test_a_trip_out_of_every_capable_drones_range_is_undeliverable() -> None:
    fleet = [busy(drone("a", range_km=20)), drone("b", range_km=10)]
    portland = GeoPoint(45.5152, -122.6784)

    with pytest.raises(UndeliverableError, match="out of range") as raised:
        choose_drone(fleet, request(dropoff=portland), now=NOW, reserve_share=0)

    assert "longest range among those drones is 20 km" in str(raised.value)


def test_when_every_capable_drone_is_busy_retry_after_the_first_landing() -> None:
    fleet = [
        busy(drone("a"), landing_in=timedelta(seconds=42.5)),
        busy(drone("b"), landing_in=timedelta(minutes=5)),
        drone("too-weak", payload=1),
    ]

    with pytest.raises(NoDroneFreeError) as raised:
        choose_drone(fleet, request(), now=NOW, reserve_share=0)

    assert raised.value.retry_after == 43


def test_retry_after_stays_within_bounds() -> None:
    late = busy(drone("a"), landing_in=timedelta(hours=3))
    landed = busy(drone("b"), landing_in=timedelta(seconds=-5))

    assert retry_after([late], NOW) == 60
    assert retry_after([landed], NOW) == 1
    assert retry_after([], NOW) == 1


def test_non_expedited_deliveries_leave_the_reserve_to_expedited_ones() -> None:
    fleet = [busy(drone("busy")), drone("last", north(SEATTLE, -1))]

    with pytest.raises(NoDroneFreeError, match="kept for expedited"):
        choose_drone(fleet, request(), now=NOW, reserve_share=0.5)
    assert choose_drone(fleet, request(expedited=True), now=NOW, reserve_share=0.5).id == "last"
    assert choose_drone(fleet, request(), now=NOW, reserve_share=0).id == "last"


def test_a_typical_delivery_is_completed_within_30_seconds_at_the_default_speedup() -> None:
    slowest = min(make_fleet(SchedulerSettings().fleet_size), key=lambda d: d.speed_kmh)
    typical = request(north(slowest.base, 3), north(slowest.base, 8))  # 3 km there, 5 km on

    plan = plan_delivery(slowest, typical, now=NOW, speedup=SchedulerSettings().sim_speedup)

    assert plan.stops[2].at - NOW < timedelta(seconds=30)


def test_the_reserve_is_a_share_of_the_fleet_rounded_down() -> None:
    assert reserve_size(20, 0.1) == 2
    assert reserve_size(5, 0.1) == 0
    assert reserve_size(20, 0.0) == 0


def test_the_index_ranks_the_able_drones_as_the_rule_does() -> None:
    fleet = make_fleet(999)
    index = FleetIndex(fleet)
    rng = random.Random(7)
    for _ in range(200):
        pickup = GeoPoint(rng.uniform(47.40, 47.82), rng.uniform(-122.50, -122.05))
        dropoff = GeoPoint(rng.uniform(47.40, 47.82), rng.uniform(-122.50, -122.05))
        package = {
            "id": "p",
            "size": rng.choice(["Small", "Medium", "Large"]),
            "weight": rng.choice([0.5, 2, 4.5, 5, 8, 12, 20, 25]),
        }
        job = request(pickup, dropoff, packageDetail=package, expedited=rng.random() < 0.5)
        try:
            expected = sorted(able_drones(fleet, job), key=preference(job))
        except UndeliverableError as error:
            with pytest.raises(UndeliverableError, match=f"^{re.escape(str(error))}$"):
                index.able(job)
            continue
        able = index.able(job)
        assert list(able) == expected
        assert list(able) == expected, "iterable again, from the first"


def test_the_index_interleaves_the_drones_of_bases_equally_near() -> None:
    pickup = GeoPoint(47.6, 0.0)
    east, west = GeoPoint(47.6, 0.01), GeoPoint(47.6, -0.01)  # exactly as far, either side
    fleet = [
        drone("east-5", east, payload=5),
        drone("east-10", east, payload=10),
        drone("west-7", west, payload=7),
        drone("far", north(pickup, 2), payload=2),
    ]
    job = request(pickup)

    ranked = [d.id for d in FleetIndex(fleet).able(job)]

    assert ranked == ["east-5", "west-7", "east-10", "far"]
    assert ranked == [d.id for d in sorted(fleet, key=preference(job))]
