"""The package and scheduler services as the workflow sees them: typed calls with three kinds of answer.

Each call either succeeds, or raises one of:
- `TryLater`: the neighbour could not serve now (unreachable, 5xx after retries, 503 "no drone free");
  asking again later may succeed, and `after` says when the neighbour suggested;
- `Refused`: the neighbour said no for good (a 4xx other than 409), with its reason;
- `PackageAboard`: the scheduler cannot change or release the assignment any more (409).

Transport concerns (timeouts, retries with backoff, the circuit breaker, the bulkhead) are
servicekit's `ServiceClient`; this module turns HTTP answers into what they mean for a delivery.
"""

from __future__ import annotations

import logging
from datetime import datetime

import httpx
from pydantic import ValidationError

from delivery_service.locations import Location
from delivery_service.models import PackageSize
from servicekit.clients import DownstreamUnavailableError, ServiceClient, retry_after_seconds
from servicekit.models import ApiModel

log = logging.getLogger(__name__)


class TryLater(Exception):  # noqa: N818 - an answer ("not now"), not a bug
    def __init__(self, reason: str, *, after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after = after


class Refused(Exception):  # noqa: N818 - an answer ("never"), not a bug
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class PackageAboard(Refused):
    """The drone has picked the package up: its assignment can no longer change or be released."""


class PackageRegistration(ApiModel):
    size: PackageSize
    weight: float
    tag: str
    owner_id: str


class PackageDetail(ApiModel):
    id: str
    size: PackageSize
    weight: float


class DroneDeliveryRequest(ApiModel):
    """The body of the scheduler's `PUT /api/dronedeliveries/{deliveryId}`."""

    delivery_id: str
    owner_id: str
    pickup: Location
    dropoff: Location
    pickup_time: datetime
    expedited: bool
    package_detail: PackageDetail


class DroneAssignment(ApiModel):
    delivery_id: str
    drone_id: str
    pickup_eta: datetime
    dropoff_eta: datetime
    distance_km: float | None = None


class DroneTracking(ApiModel):
    """What the scheduler's GET tells about a flight: where the drone is now."""

    drone_id: str | None = None
    location: Location | None = None
    pickup_eta: datetime | None = None
    dropoff_eta: datetime | None = None


class PackageService:
    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def exists(self, package_id: str) -> bool:
        response = await _call(self._client, "GET", f"/api/packages/{package_id}", ok=(200, 404))
        return response.status_code == 200

    async def register(self, package_id: str, registration: PackageRegistration) -> None:
        """Create or replace the package (PUT is idempotent: 201 created, 204 replaced)."""
        await _call(
            self._client,
            "PUT",
            f"/api/packages/{package_id}",
            json=registration.model_dump(mode="json"),
            ok=(200, 201, 204),
        )

    async def delete(self, package_id: str) -> None:
        """Delete the package; one already gone is deleted too (204)."""
        await _call(self._client, "DELETE", f"/api/packages/{package_id}", ok=(200, 204, 404))


class SchedulerService:
    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def assign(self, request: DroneDeliveryRequest) -> DroneAssignment:
        """Get a drone for the plan (201), the same one again (200), or a re-plan (200)."""
        response = await _call(
            self._client,
            "PUT",
            f"/api/dronedeliveries/{request.delivery_id}",
            json=request.model_dump(mode="json"),
            ok=(200, 201),
            scheduler=True,
        )
        try:
            return DroneAssignment.model_validate_json(response.content)
        except ValidationError as exc:
            raise TryLater(f"the scheduler answered an assignment that is not one: {exc}") from None

    async def release(self, delivery_id: str) -> None:
        """Free the drone (204, also when there was no assignment)."""
        await _call(
            self._client,
            "DELETE",
            f"/api/dronedeliveries/{delivery_id}",
            ok=(200, 204, 404),
            scheduler=True,
        )

    async def track(self, delivery_id: str, *, deadline: float) -> DroneTracking | None:
        """The flight as the scheduler sees it now; None when it cannot say within `deadline`."""
        try:
            response = await self._client.get(
                f"/api/dronedeliveries/{delivery_id}", deadline=deadline
            )
        except DownstreamUnavailableError as exc:
            log.info("no live position for %s: %s", delivery_id, exc.reason)
            return None
        if response.status_code != 200:
            return None
        try:
            return DroneTracking.model_validate_json(response.content)
        except ValidationError:
            return None


async def _call(
    client: ServiceClient,
    method: str,
    path: str,
    *,
    ok: tuple[int, ...],
    json: object = None,
    scheduler: bool = False,
) -> httpx.Response:
    """Make the call; answer the response if its status is `ok`, else raise what it means.

    `scheduler`: the scheduler's 409 (package aboard) and 503 with Retry-After (no drone free).
    """
    try:
        response = await client.request(method, path, json=json)
    except DownstreamUnavailableError as exc:
        raise TryLater(f"the {exc.downstream} service did not answer ({exc.reason})") from None
    status = response.status_code
    if status in ok:
        return response
    if status == 409 and scheduler:
        raise PackageAboard(409, _reason(response) or "the drone has already picked the package up")
    if status == 503 and scheduler and "retry-after" in response.headers:
        raise TryLater("no drone is free yet", after=retry_after_seconds(response))
    if status >= 500 or status in (408, 429):
        raise TryLater(
            f"the {client.name} service answered {status}", after=retry_after_seconds(response)
        )
    raise Refused(status, _reason(response) or f"the {client.name} service answered {status}")


def _reason(response: httpx.Response) -> str | None:
    """The neighbour's own words: a problem's detail (or title), or a short plain-text body."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:300] or None
    if not isinstance(body, dict):
        return None
    reason = next((body[k] for k in ("detail", "title") if isinstance(body.get(k), str)), None)
    errors = body.get("errors")
    if isinstance(errors, list):
        fields = [
            f"{e.get('field')}: {e.get('message')}"
            for e in errors
            if isinstance(e, dict) and e.get("field") and e.get("message")
        ]
        if fields:
            reason = f"{reason} ({'; '.join(fields)})" if reason else "; ".join(fields)
    return reason
