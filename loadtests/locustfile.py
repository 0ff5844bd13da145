"""Load test of Drone Delivery's public API, through the gateway, as customers use it.

Customers request deliveries across the Seattle metro area (where the fleet is based), follow them
(status, the delivery, its tracking events), and now and then reschedule or cancel one. Requests are
grouped by route (`name=`), so the statistics have one line per route, not one per delivery id.

    locust -f loadtests/locustfile.py --headless --host http://127.0.0.1:8080 \\
        --load-shape step --shape-seconds 240

Options of this file (besides Locust's own):
    --load-shape step|spike|soak   step: 4 users more every tenth of the run, up to --peak-users;
                                   spike: a tenth of the peak, then the peak for a sixth of the run,
                                   then back (does it recover?); soak: half the peak, for long
    --shape-seconds N              how long the shape runs (default: 240, 180 and 3600 s)
    --peak-users N                 the most users at once (default 40)
    --slo-error-ratio R            the largest share of failed requests that passes (default 0.01)
    --slo-p95-scale F              multiply every route's p95 threshold (a slower machine, say)

The run's exit code is 0 only when every service level objective held (see `SLO_P95_MS`), so a
pipeline can gate on it. Only Locust itself is needed: the file runs as is on Azure Load Testing.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from locust import FastHttpUser, LoadTestShape, between, events, task
from locust.env import Environment

log = logging.getLogger("loadtest")

# --- Realistic data -----------------------------------------------------------------------------

# Places across the Seattle metro area, where the simulated fleet has its bases.
PLACES: dict[str, tuple[float, float]] = {
    "Space Needle": (47.6205, -122.3493),
    "Pike Place Market": (47.6097, -122.3422),
    "Pioneer Square": (47.6015, -122.3343),
    "Capitol Hill": (47.6253, -122.3222),
    "South Lake Union": (47.6270, -122.3366),
    "Fremont": (47.6510, -122.3500),
    "Wallingford": (47.6615, -122.3343),
    "University District": (47.6553, -122.3035),
    "Ballard": (47.6687, -122.3843),
    "Green Lake": (47.6801, -122.3287),
    "Queen Anne": (47.6372, -122.3571),
    "Magnolia": (47.6390, -122.3990),
    "Beacon Hill": (47.5677, -122.3110),
    "SoDo": (47.5801, -122.3344),
    "Georgetown": (47.5480, -122.3213),
    "West Seattle": (47.5612, -122.3868),
    "Columbia City": (47.5596, -122.2868),
    "Bellevue Downtown": (47.6101, -122.2015),
    "Kirkland": (47.6769, -122.2060),
    "Redmond": (47.6740, -122.1215),
    "Northgate": (47.7062, -122.3259),
    "Renton": (47.4829, -122.2171),
}


def kilometres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371 * math.asin(math.sqrt(h))


# Drones fly base → pickup → drop-off → base on one charge (10-40 km), so customers send parcels
# across a neighbourhood or two: hops of 1 to 5 km, which some drone of every class can fly.
ROUTES: list[tuple[str, str]] = [
    (a, b)
    for a in PLACES
    for b in PLACES
    if a != b and 1.0 <= kilometres(PLACES[a], PLACES[b]) <= 5.0
]

# (size, share of parcels, weight range in kg): most parcels are small and light.
PARCELS: list[tuple[str, float, tuple[float, float]]] = [
    ("Small", 0.6, (0.2, 4.5)),
    ("Medium", 0.3, (1.0, 11.0)),
    ("Large", 0.1, (3.0, 20.0)),
]
_RANDOM = random.Random()
TAGS = ("books", "groceries", "medicine", "flowers", "spare parts", "documents", "electronics")


def delivery_request(owner_id: str, rng: random.Random | None = None) -> dict[str, Any]:
    """A delivery request a customer might send: a flyable route, a parcel from the mix."""
    rng = rng or _RANDOM
    pickup, dropoff = rng.choice(ROUTES)
    size, _share, (lightest, heaviest) = rng.choices(PARCELS, weights=[p[1] for p in PARCELS])[0]
    request: dict[str, Any] = {
        "ownerId": owner_id,
        "pickupLocation": _location(PLACES[pickup], rng),
        "dropOffLocation": _location(PLACES[dropoff], rng),
        "expedited": rng.random() < 0.1,
        "confirmationRequired": rng.choice(["None", "None", "Picture", "FingerPrint", "Voice"]),
        "packageInfo": {
            "size": size,
            "weight": round(rng.uniform(lightest, heaviest), 1),
            "tag": rng.choice(TAGS),
        },
    }
    if rng.random() < 0.2:  # some want it later today
        later = datetime.now(UTC) + timedelta(minutes=rng.randint(15, 180))
        request["pickupTime"] = later.isoformat(timespec="seconds")
    return request


def _location(place: tuple[float, float], rng: random.Random) -> dict[str, float]:
    # A doorstep within about 200 m of the place.
    return {
        "latitude": round(place[0] + rng.uniform(-0.002, 0.002), 6),
        "longitude": round(place[1] + rng.uniform(-0.003, 0.003), 6),
    }


# --- Service level objectives -------------------------------------------------------------------

# The 95th percentile each route must stay under, in milliseconds. Status asks the scheduler for the
# drone's live position; a reschedule or cancel of a scheduled delivery waits for its decision.
SLO_P95_MS: dict[str, float] = {
    "POST /api/deliveryrequests": 500,
    "GET /api/deliveries/[id]": 250,
    "GET /api/deliveries/[id]/status": 400,
    "GET /api/deliveries/[id]/events": 300,
    "PATCH /api/deliveryrequests/[id]": 2000,
    "DELETE /api/deliveryrequests/[id]": 2000,
}
FINISHED = {"Completed", "Cancelled", "Failed"}
PICKED_UP = {"HeadedToDropoff", *FINISHED}


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser.add_argument_group("Drone Delivery")
    group.add_argument("--load-shape", choices=sorted(SHAPES), default="step")
    group.add_argument("--shape-seconds", type=float, default=0, help="0: the shape's default")
    group.add_argument("--peak-users", type=int, default=40)
    group.add_argument("--slo-error-ratio", type=float, default=0.01)
    group.add_argument("--slo-p95-scale", type=float, default=1.0)


def slo_breaches(environment: Environment) -> list[str]:
    """What the run broke of the objectives: the error ratio overall, the p95 of each route."""
    options = environment.parsed_options
    error_limit = options.slo_error_ratio if options else 0.01
    scale = options.slo_p95_scale if options else 1.0
    stats = environment.stats
    breaches = []
    if stats.total.num_requests == 0:
        breaches.append("no request was made")
    elif stats.total.fail_ratio > error_limit:
        breaches.append(f"error ratio {stats.total.fail_ratio:.2%} > {error_limit:.2%}")
    for (name, method), entry in sorted(stats.entries.items()):
        limit = SLO_P95_MS.get(f"{method} {name}")
        if limit is None or entry.num_requests == 0:
            continue
        p95 = entry.get_response_time_percentile(0.95)
        if p95 > limit * scale:
            breaches.append(f"{method} {name}: p95 {p95:.0f} ms > {limit * scale:.0f} ms")
    return breaches


@events.quitting.add_listener
def _judge(environment: Environment, **_kwargs: Any) -> None:
    breaches = slo_breaches(environment)
    for breach in breaches:
        log.error("SLO breached: %s", breach)
    if not breaches:
        log.info("every SLO held")
    environment.process_exit_code = 1 if breaches else 0


# --- Customers ----------------------------------------------------------------------------------


class Customer(FastHttpUser):
    """Someone who sends parcels and keeps an eye on them."""

    wait_time = between(1, 4)

    def on_start(self) -> None:
        self.owner_id = f"loadtest-{random.randrange(10**6):06d}"
        self.deliveries: list[str] = []

    @task(3)
    def request_delivery(self) -> None:
        with self.client.post(
            "/api/deliveryrequests",
            json=delivery_request(self.owner_id),
            name="/api/deliveryrequests",
            catch_response=True,
        ) as response:
            if response.status_code != 202:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                return
            delivery_id = response.json()["deliveryId"]
            if response.headers.get("Location") != f"/api/deliveries/{delivery_id}":
                response.failure("no Location of the accepted delivery")
                return
            self.deliveries = [*self.deliveries, delivery_id][-20:]

    @task(6)
    def poll_status(self) -> None:
        for delivery_id in self._one():
            self._read(f"/api/deliveries/{delivery_id}/status", "/api/deliveries/[id]/status")

    @task(3)
    def read_delivery(self) -> None:
        for delivery_id in self._one():
            delivery = self._read(f"/api/deliveries/{delivery_id}", "/api/deliveries/[id]")
            if delivery is not None and delivery["stage"] in FINISHED:
                self.deliveries.remove(delivery_id)  # nothing more to follow

    @task(2)
    def read_events(self) -> None:
        for delivery_id in self._one():
            self._read(f"/api/deliveries/{delivery_id}/events", "/api/deliveries/[id]/events")

    @task(1)
    def reschedule(self) -> None:
        later = datetime.now(UTC) + timedelta(minutes=random.randint(30, 240))
        for delivery_id in self._one():
            with self.client.request(
                "PATCH",
                f"/api/deliveryrequests/{delivery_id}",
                json={"pickupTime": later.isoformat(timespec="seconds")},
                name="/api/deliveryrequests/[id]",
                catch_response=True,
            ) as response:
                # 409: picked up already, or another change under way; 422 and 503 "change
                # refused": the scheduler has no drone for the new plan. All are answers.
                if response.status_code in (200, 202, 409) or _refused(response):
                    response.success()
                else:
                    response.failure(f"HTTP {response.status_code}: {response.text[:200]}")

    @task(1)
    def cancel(self) -> None:
        for delivery_id in self._one():
            with self.client.delete(
                f"/api/deliveryrequests/{delivery_id}",
                name="/api/deliveryrequests/[id]",
                catch_response=True,
            ) as response:
                if response.status_code in (202, 204, 409):
                    response.success()
                    self.deliveries.remove(delivery_id)
                else:
                    response.failure(f"HTTP {response.status_code}: {response.text[:200]}")

    def _one(self) -> Iterator[str]:
        """One of this customer's deliveries, if there is any yet."""
        if self.deliveries:
            yield random.choice(self.deliveries)

    def _read(self, path: str, name: str) -> Any:
        with self.client.get(path, name=name, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                return None
            return response.json()


def _refused(response: Any) -> bool:
    if response.status_code not in (422, 503):
        return False
    try:
        return str(response.json().get("type", "")).endswith("/change-refused")
    except ValueError:
        return False


# --- Load shapes --------------------------------------------------------------------------------


def step_users(elapsed: float, duration: float, peak: int) -> int:
    """4 → 40 in ten equal steps (for the default peak of 40), like the original's load test."""
    steps = 10
    step = min(steps - 1, int(elapsed / (duration / steps)))
    return max(1, round(peak * (step + 1) / steps))


def spike_users(elapsed: float, duration: float, peak: int) -> int:
    """A tenth of the peak; the whole peak from a third of the run for a sixth of it; then back."""
    quiet = max(1, peak // 10)
    return peak if duration / 3 <= elapsed < duration / 2 else quiet


def soak_users(elapsed: float, duration: float, peak: int) -> int:
    """Half the peak, steadily: leaks, growing stores and slow drifts show over time."""
    return max(1, peak // 2)


SHAPES = {
    "step": (step_users, 240.0),
    "spike": (spike_users, 180.0),
    "soak": (soak_users, 3600.0),
}


class SelectedShape(LoadTestShape):
    """The shape chosen with --load-shape, run for --shape-seconds."""

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options if self.runner else None
        users, default_seconds = SHAPES[options.load_shape if options else "step"]
        duration = (options.shape_seconds if options else 0) or default_seconds
        peak = options.peak_users if options else 40
        elapsed = self.get_run_time()
        if elapsed >= duration:
            return None
        # Users start at up to 10 a second, as people arrive rather than all at once.
        return users(elapsed, duration, peak), 10.0
