"""The chaos test's parts: the stack's settings, customers who retry as the API contract allows, the
process killer, the checks of what the system promises afterwards, and the report.

Everything here talks to 127.0.0.1 only, sends a bounded number of requests, and stops by itself.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import random
import signal
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from devstack.gateway import GatewayLimits
from devstack.stack import Ports, Stack, StackSettings
from servicekit.testing import free_port

TERMINAL = frozenset(("Completed", "Cancelled", "Failed"))
ACTIVE = frozenset(("Scheduled", "HeadedToPickup", "HeadedToDropoff"))
# What a drone reports of a flight: its departure, the pickup and the drop-off.
FLIGHT_STAGES = frozenset(("HeadedToPickup", "HeadedToDropoff", "Completed"))
# Answers that mean "no answer from the system this time": a client may send the same request again
# (a POST with the same Idempotency-Key). A 503 that is the service's decision is not among them.
RETRIED = frozenset((429, 502, 503, 504))
DECISIONS = frozenset(("change-refused", "no-drone-free"))

# Fast flights, short leases and quick retries, so that a crash is recovered from within seconds and
# the whole test fits in a CI run. Each stays within what the services accept (lease > retry + call).
CHAOS_ENV = {
    "SCHEDULER_SIM_SPEEDUP": "600",
    "SCHEDULER_FLEET_SIZE": "20",
    "SCHEDULER_CLAIM_GRACE_SECONDS": "10",
    "SCHEDULER_NOTIFICATION_MAX_BACKOFF_SECONDS": "2",
    "DELIVERY_LEASE_SECONDS": "8",
    "DELIVERY_SWEEP_INTERVAL_SECONDS": "1",
    "DELIVERY_RETRY_MAX_SECONDS": "2",
    "DELIVERY_CALL_DEADLINE_SECONDS": "5",
    "DELIVERY_CHANGE_WAIT_SECONDS": "3",
    "DELIVERY_LOG_LEVEL": "WARNING",
    "PACKAGE_LOG_LEVEL": "WARNING",
    "SCHEDULER_LOG_LEVEL": "WARNING",
}
# The load must meet the system, not the rate limit.
UNLIMITED = GatewayLimits(max_body_size="16k", rate_limit="1000r/s", rate_burst=1000)

# Central Seattle: inside every drone's range from most bases.
CITY = ((47.600, 47.665), (-122.360, -122.300))
TACOMA = {"latitude": 47.2529, "longitude": -122.4443}  # beyond every drone: the request fails


def chaos_stack_settings(data_dir: Path, **env: str) -> StackSettings:
    return StackSettings(
        data_dir=data_dir,
        ports=Ports(
            gateway=free_port(), delivery=free_port(), package=free_port(), scheduler=free_port()
        ),
        limits=UNLIMITED,
        env={**CHAOS_ENV, **env},
    )


def chaos_seconds() -> float:
    """How long processes are killed: CHAOS_SECONDS (make chaos: 60), 15 by default (CI)."""
    return float(os.environ.get("CHAOS_SECONDS", "15"))


def report_path(root: Path) -> Path:
    return root / ".data" / "chaos" / "report.txt"


# --- What the clients saw ----------------------------------------------------------------------


@dataclass
class Answer:
    at: float
    method: str
    route: str
    status: int | None  # None: no answer (connection refused or reset, timed out)
    kind: str  # the problem's type or title, or the transport error


@dataclass
class Customer:
    index: int
    request: dict[str, Any]
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    delivery_id: str | None = None
    package_id: str | None = None
    post_attempts: int = 0
    refused: str | None = None
    change: str | None = None  # "cancel" or "reschedule", when the customer asked for one
    cancel_status: int | None = None
    reschedule_status: int | None = None
    new_dropoff: dict[str, float] | None = None


@dataclass
class Kill:
    at: float
    program: str
    pid: int


class Traffic:
    """Every answer the clients got, to count the 5xx by kind and by window."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.kills: list[Kill] = []
        self.chaos_ends_at = math.inf

    def window(self, at: float) -> str:
        return "kills" if at <= self.chaos_ends_at else "settle"

    def server_errors(self) -> Counter[tuple[str, str, str]]:
        return Counter(
            (self.window(a.at), str(a.status) if a.status else "no answer", a.kind)
            for a in self.answers
            if a.status is None or a.status >= 500
        )


def _kind(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return str(response.headers.get("content-type", "?"))
    if not isinstance(body, dict):
        return "?"
    kind = str(body.get("type", ""))
    if kind.startswith("http"):
        return kind.rsplit("/", 1)[-1]
    return str(body.get("title", "?"))


class Client:
    """A client that retries as the contract allows: on no answer, 429, 502, 503 and 504 (honouring
    Retry-After, up to a second), with the same request, and so the same Idempotency-Key."""

    def __init__(self, http: httpx.AsyncClient, traffic: Traffic, *, patience: float) -> None:
        self._http = http
        self._traffic = traffic
        self._patience = patience

    async def call(
        self, method: str, path: str, route: str, **kwargs: Any
    ) -> tuple[httpx.Response | None, int]:
        """The first answer that is not a retried one (None if patience ran out), and the attempts."""
        give_up_at = time.monotonic() + self._patience
        attempts = 0
        while True:
            attempts += 1
            pause = random.uniform(0.1, 0.4)
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                self._traffic.answers.append(
                    Answer(time.monotonic(), method, route, None, type(exc).__name__)
                )
            else:
                kind = _kind(response) if response.status_code >= 400 else ""
                self._traffic.answers.append(
                    Answer(time.monotonic(), method, route, response.status_code, kind)
                )
                if response.status_code not in RETRIED or kind in DECISIONS:
                    return response, attempts
                retry_after = response.headers.get("retry-after", "")
                if retry_after.isdigit():
                    pause = min(float(retry_after), 1.0)
            if time.monotonic() + pause > give_up_at:
                return None, attempts
            await asyncio.sleep(pause)


def delivery_request(rng: random.Random, index: int) -> dict[str, Any]:
    def somewhere() -> dict[str, float]:
        (lat0, lat1), (lon0, lon1) = CITY
        return {
            "latitude": round(rng.uniform(lat0, lat1), 5),
            "longitude": round(rng.uniform(lon0, lon1), 5),
        }

    size, weight = rng.choice(
        [("Small", 1.0), ("Small", 3.5), ("Medium", 6.0), ("Medium", 2.0), ("Large", 15.0)]
    )
    request: dict[str, Any] = {
        "ownerId": f"chaos-{index % 7}",
        "pickupLocation": somewhere(),
        "dropOffLocation": TACOMA if index % 17 == 5 else somewhere(),
        "expedited": rng.random() < 0.2,
        "packageInfo": {"size": size, "weight": weight, "tag": f"chaos parcel {index}"},
    }
    if rng.random() < 0.3:  # a little later: the drone waits Reserved, where cancels are common
        later = datetime.now(UTC) + timedelta(seconds=rng.uniform(2, 10))
        request["pickupTime"] = later.isoformat()
    return request


class Load:
    """Customers arriving at a steady rate for `seconds`: each requests a delivery, and some cancel
    or reschedule it a moment later. Bounded in count (rate x seconds) and in time (patience)."""

    def __init__(
        self, stack: Stack, traffic: Traffic, *, seconds: float, rate: float, seed: int
    ) -> None:
        self._stack = stack
        self._traffic = traffic
        self._seconds = seconds
        self._rate = rate
        self._rng = random.Random(seed)
        self.customers: list[Customer] = []

    async def run(self) -> list[Customer]:
        count = int(self._seconds * self._rate)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
        async with httpx.AsyncClient(
            base_url=self._stack.gateway_url, timeout=5.0, limits=limits
        ) as http:
            client = Client(http, self._traffic, patience=self._seconds + 30)
            tasks = []
            for index in range(count):
                customer = Customer(index, delivery_request(self._rng, index))
                self.customers.append(customer)
                tasks.append(asyncio.create_task(self._serve(client, customer)))
                await asyncio.sleep(1 / self._rate)
            await asyncio.gather(*tasks)
        return self.customers

    async def _serve(self, client: Client, customer: Customer) -> None:
        response, customer.post_attempts = await client.call(
            "POST",
            "/api/deliveryrequests",
            "POST /api/deliveryrequests",
            json=customer.request,
            headers={"Idempotency-Key": customer.key},
        )
        if response is None or response.status_code != 202:
            customer.refused = "no answer" if response is None else str(response.status_code)
            return
        accepted = response.json()
        customer.delivery_id = accepted["deliveryId"]
        customer.package_id = accepted["packageInfo"]["packageId"]
        path = f"/api/deliveryrequests/{customer.delivery_id}"
        dice = self._rng.random()
        await asyncio.sleep(self._rng.uniform(0.0, 2.0))
        if dice < 0.2:
            customer.change = "cancel"
            cancelled, _ = await client.call("DELETE", path, "DELETE /api/deliveryrequests/{id}")
            customer.cancel_status = cancelled.status_code if cancelled is not None else None
        elif dice < 0.4:
            customer.change = "reschedule"
            customer.new_dropoff = {
                "latitude": round(self._rng.uniform(*CITY[0]), 5),
                "longitude": round(self._rng.uniform(*CITY[1]), 5),
            }
            changed, _ = await client.call(
                "PATCH",
                path,
                "PATCH /api/deliveryrequests/{id}",
                json={"dropOffLocation": customer.new_dropoff},
            )
            customer.reschedule_status = changed.status_code if changed is not None else None
        await client.call(
            "GET",
            f"/api/deliveries/{customer.delivery_id}/status",
            "GET /api/deliveries/{id}/status",
        )


class Killer:
    """Kills a random program with SIGKILL every few seconds; each of `programs` in turn, in a new
    random order every round, so that every one of them dies during the run."""

    def __init__(
        self, stack: Stack, traffic: Traffic, programs: Iterable[str], *, seconds: float, seed: int
    ) -> None:
        self._stack = stack
        self._traffic = traffic
        self._programs = list(programs)
        self._seconds = seconds
        self._rng = random.Random(seed)

    async def run(self) -> None:
        ends_at = time.monotonic() + self._seconds
        order: list[str] = []
        while True:
            await asyncio.sleep(self._rng.uniform(2.0, 4.0))
            if time.monotonic() >= ends_at:
                break
            if not order:
                order = self._rng.sample(self._programs, len(self._programs))
            program = order.pop()
            # The gateway with its workers, as a crashed pod would; a service is one process.
            pid = await asyncio.to_thread(
                self._stack.kill, program, signal.SIGKILL, group=program == "gateway"
            )
            self._traffic.kills.append(Kill(time.monotonic(), program, pid))
        self._traffic.chaos_ends_at = time.monotonic()


# --- What must hold afterwards -------------------------------------------------------------------


@dataclass
class Findings:
    """What the system promised and did not keep; every list must stay empty."""

    lost: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    double_booked: list[str] = field(default_factory=list)
    leaked_packages: list[str] = field(default_factory=list)
    held_drones: list[str] = field(default_factory=list)
    duplicated_events: list[str] = field(default_factory=list)
    broken_promises: list[str] = field(default_factory=list)

    def problems(self) -> dict[str, list[str]]:
        return {name: items for name, items in vars(self).items() if items}


@dataclass
class Outcome:
    customers: list[Customer]
    deliveries: dict[str, dict[str, Any]]
    events: dict[str, list[dict[str, Any]]]
    findings: Findings


def settle(stack: Stack, customers: list[Customer], *, timeout: float) -> dict[str, dict[str, Any]]:
    """Wait until every accepted delivery is finished (or `timeout`); answer them as last read."""
    accepted = [c.delivery_id for c in customers if c.delivery_id is not None]
    deliveries: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=stack.gateway_url, timeout=5) as gateway:
        waiting = set(accepted)
        while waiting and time.monotonic() < deadline:
            for delivery_id in sorted(waiting):
                try:
                    response = gateway.get(f"/api/deliveries/{delivery_id}")
                except httpx.TransportError:
                    continue
                if response.status_code == 200:
                    deliveries[delivery_id] = response.json()
                    if deliveries[delivery_id]["stage"] in TERMINAL:
                        waiting.discard(delivery_id)
            if waiting:
                time.sleep(0.5)
    return deliveries


def check(
    stack: Stack, customers: list[Customer], deliveries: dict[str, dict[str, Any]]
) -> Outcome:
    findings = Findings()
    events: dict[str, list[dict[str, Any]]] = {}
    with (
        httpx.Client(base_url=stack.gateway_url, timeout=10) as gateway,
        httpx.Client(base_url=stack.service_url("scheduler"), timeout=10) as scheduler,
        httpx.Client(base_url=stack.service_url("package"), timeout=10) as packages,
    ):
        fleet = scheduler.get("/api/drones").json()
        holders = {drone["deliveryId"]: drone["id"] for drone in fleet if drone["deliveryId"]}
        for customer in customers:
            delivery_id = customer.delivery_id
            if delivery_id is None:
                continue
            response = gateway.get(f"/api/deliveries/{delivery_id}")
            if response.status_code != 200:
                findings.lost.append(f"{delivery_id}: GET answered {response.status_code}")
                continue
            delivery = deliveries[delivery_id] = response.json()
            stage = delivery["stage"]
            events[delivery_id] = gateway.get(f"/api/deliveries/{delivery_id}/events").json()
            if stage not in TERMINAL:
                findings.unfinished.append(f"{delivery_id}: {stage}")
            if stage in ("Failed", "Cancelled"):
                package = packages.get(f"/api/packages/{delivery['packageId']}").status_code
                if package != 404:
                    findings.leaked_packages.append(f"{delivery_id} ({stage}): package {package}")
                assignment = scheduler.get(f"/api/dronedeliveries/{delivery_id}").status_code
                if assignment != 404 or delivery_id in holders:
                    findings.held_drones.append(
                        f"{delivery_id} ({stage}): assignment {assignment}, "
                        f"drone {holders.get(delivery_id)}"
                    )
            _check_events(delivery_id, stage, events[delivery_id], findings)
            _check_promises(customer, delivery, events[delivery_id], findings)
    _check_drones(deliveries, fleet, events, findings)
    return Outcome(customers, deliveries, events, findings)


def _check_events(
    delivery_id: str, stage: str, events: list[dict[str, Any]], findings: Findings
) -> None:
    ids = Counter(event["eventId"] for event in events)
    kinds = Counter(event["stage"] for event in events)
    repeated = sorted(i for i, n in ids.items() if n > 1)
    expected = {"Created": 1, stage: 1} if stage in TERMINAL else {"Created": 1}
    once = ("Created", "Scheduled", "HeadedToDropoff", "Completed", "Cancelled", "Failed")
    wrong = {
        kind: kinds[kind]
        for kind in once
        if kinds[kind] > 1 or (kind in expected and kinds[kind] != expected[kind])
    }
    if repeated or wrong:
        findings.duplicated_events.append(
            f"{delivery_id} ({stage}): repeated ids {repeated}, counts {wrong}: "
            + ", ".join(event["stage"] for event in events)
        )


def _check_promises(
    customer: Customer,
    delivery: Mapping[str, Any],
    events: list[dict[str, Any]],
    findings: Findings,
) -> None:
    """What an answer promised the customer must have come true."""
    stage = delivery["stage"]
    if customer.cancel_status == 204 and stage != "Cancelled":
        findings.broken_promises.append(f"{delivery['id']}: cancel answered 204, ended {stage}")
    if customer.reschedule_status == 200 and stage == "Completed":
        assert customer.new_dropoff is not None
        completed = next(e for e in events if e["stage"] == "Completed")
        if _km(completed["location"], customer.new_dropoff) > 0.05:
            findings.broken_promises.append(
                f"{delivery['id']}: rescheduled (200) to {customer.new_dropoff}, "
                f"delivered at {completed['location']}"
            )


def _check_drones(
    deliveries: Mapping[str, Mapping[str, Any]],
    fleet: list[dict[str, Any]],
    events: Mapping[str, list[dict[str, Any]]],
    findings: Findings,
) -> None:
    # Now: a drone serves at most one unfinished delivery, and the one that says it has that drone.
    active: dict[str, list[str]] = defaultdict(list)
    for delivery_id, delivery in deliveries.items():
        if delivery["stage"] in ACTIVE and delivery["droneId"]:
            active[delivery["droneId"]].append(delivery_id)
    for drone_id, ids in active.items():
        if len(ids) > 1:
            findings.double_booked.append(f"{drone_id} is the drone of {sorted(ids)}")
    for drone in fleet:
        served = deliveries.get(drone["deliveryId"] or "")
        if served is not None and served["stage"] in TERMINAL:
            findings.double_booked.append(
                f"{drone['id']} still serves {served['id']}, which is {served['stage']}"
            )
    # Over the whole run: the flights a drone made for different deliveries never overlap.
    for drone_id, spans in drone_flights(events).items():
        spans.sort()
        for (_, end, first), (start, _, second) in itertools.pairwise(spans):
            if start <= end:
                findings.double_booked.append(
                    f"{drone_id} flew {first} until {end.isoformat()} and {second} "
                    f"from {start.isoformat()}"
                )


def drone_flights(
    events: Mapping[str, list[dict[str, Any]]],
) -> dict[str, list[tuple[datetime, datetime, str]]]:
    """Each drone's flights (first and last report, delivery id), from the scheduler's reports of
    departure, pickup and drop-off at their planned times.

    Every flight starts with a departure (HeadedToPickup). A delivery can fly one drone twice: a
    reschedule recalls a drone that has left, and the new plan may take the same drone again once
    it is back, after flying other deliveries meanwhile. Those are two flights, not one long one.
    """
    flights: dict[str, list[tuple[datetime, datetime, str]]] = defaultdict(list)
    for delivery_id, delivery_events in events.items():
        reports = sorted(
            (datetime.fromisoformat(event["time"]), event["stage"], event["droneId"])
            for event in delivery_events
            if event["stage"] in FLIGHT_STAGES and event.get("droneId")
        )
        trips: dict[str, list[list[datetime]]] = defaultdict(list)
        for moment, stage, drone_id in reports:
            if stage == "HeadedToPickup" or not trips[drone_id]:
                trips[drone_id].append([moment])
            else:
                trips[drone_id][-1].append(moment)
        for drone_id, flown in trips.items():
            flights[drone_id].extend((trip[0], trip[-1], delivery_id) for trip in flown)
    return dict(flights)


def _km(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    lat1, lon1, lat2, lon2 = map(
        math.radians, (a["latitude"], a["longitude"], b["latitude"], b["longitude"])
    )
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371 * math.asin(math.sqrt(h))


# --- The report ----------------------------------------------------------------------------------


def report(outcome: Outcome, traffic: Traffic, *, seconds: float, settle_seconds: float) -> str:
    customers = outcome.customers
    accepted = [c for c in customers if c.delivery_id is not None]
    stages = Counter(outcome.deliveries[c.delivery_id]["stage"] for c in accepted if c.delivery_id)
    kills = Counter(kill.program for kill in traffic.kills)
    requests = Counter(answer.route.split(" ", 1)[0] for answer in traffic.answers)
    retried_posts = sum(1 for c in customers if c.post_attempts > 1)
    findings = outcome.findings
    lines = [
        f"Chaos report: {seconds:g} s of kill -9, then {settle_seconds:.0f} s to settle",
        f"  kills: {len(traffic.kills)} ("
        + ", ".join(f"{program} {n}" for program, n in sorted(kills.items()))
        + ")",
        f"  requests sent: {len(traffic.answers)} ("
        + ", ".join(f"{method} {n}" for method, n in sorted(requests.items()))
        + f"); delivery requests sent again with their Idempotency-Key: {retried_posts}",
        f"  delivery requests: {len(customers)}; accepted (202): {len(accepted)}; "
        f"not accepted: {len(customers) - len(accepted)}"
        + _listed(Counter(c.refused for c in customers if c.refused)),
        "  terminal by stage: "
        + ", ".join(f"{stage} {n}" for stage, n in sorted(stages.items()) if stage in TERMINAL)
        + f"; still in progress: {sum(n for s, n in stages.items() if s not in TERMINAL)}",
        "  cancels answered: "
        + _statuses(c.cancel_status for c in accepted if c.change == "cancel")
        + "; reschedules answered: "
        + _statuses(c.reschedule_status for c in accepted if c.change == "reschedule"),
        f"  lost: {len(findings.lost)}   double-booked: {len(findings.double_booked)}   "
        f"leaked packages: {len(findings.leaked_packages)}   "
        f"drones held by finished deliveries: {len(findings.held_drones)}   "
        f"duplicated events: {len(findings.duplicated_events)}   "
        f"broken promises: {len(findings.broken_promises)}   "
        f"unfinished: {len(findings.unfinished)}",
        "  5xx and unanswered requests, by window and kind:",
    ]
    errors = traffic.server_errors()
    if not errors:
        lines.append("    none")
    for (window, status, kind), n in sorted(errors.items()):
        lines.append(f"    {window:<7} {status:<10} {kind:<28} {n}")
    for name, items in findings.problems().items():
        lines.append(f"  {name}:")
        lines.extend(f"    {item}" for item in items[:20])
    return "\n".join(lines)


def _statuses(statuses: Iterable[int | None]) -> str:
    counted = Counter("no answer" if s is None else str(s) for s in statuses)
    return ", ".join(f"{s} x{n}" for s, n in sorted(counted.items())) or "none"


def _listed(counted: Counter[Any]) -> str:
    if not counted:
        return ""
    return " (" + ", ".join(f"{k}: {n}" for k, n in sorted(counted.items())) + ")"
