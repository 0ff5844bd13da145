"""The client one service uses to call another: pooled, bounded in time, retried, broken, bulkheaded.

It is httpx, the client the field writes to (and the one OpenTelemetry instruments), over aiohttp's
connection pool (the `httpx-aiohttp` transport, by httpx's maintainer): httpx's own pool checks every
idle connection on every request, which cost a third of a busy service's CPU here. httpx's client
builds each request (base URL, headers, timeout) and hands it straight to the transport, where
OpenTelemetry's span is made: its `send` would add authentication, redirects, cookies and event
hooks, none of which a call between these services has, for 85 µs of CPU a call (a fifth of it).

One `ServiceClient` per downstream service. Each call:
- waits for a slot in the downstream's bulkhead, so a slow neighbour cannot take every connection;
- passes the circuit breaker, which fails fast while the neighbour is known to be down;
- is retried with jittered exponential backoff on connection errors, timeouts, 502, 503, 504 and 429
  (never on another 4xx: asking again would get the same answer), waiting at least `Retry-After`
  (tenacity, entered only once a first attempt has failed so);
- stops at its deadline, however many attempts that leaves.

Retrying is safe because every call between the services of this system is idempotent: resources are
PUT under ids the caller chose, and events carry ids the receiver deduplicates.

The caller gets the last response (a 503 after the retries ran out, a 404, ...) and decides what it
means; when there is no response at all, `DownstreamUnavailableError` says why.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from httpx_aiohttp import AiohttpTransport
from opentelemetry import metrics
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from servicekit.context import current_request_id
from servicekit.telemetry import current_telemetry

log = logging.getLogger(__name__)
meter = metrics.get_meter("servicekit.clients")
retries = meter.create_counter(
    "servicekit.client.retries", unit="{retry}", description="Calls to another service retried"
)
breaker_openings = meter.create_counter(
    "servicekit.client.circuit_breaker.openings",
    unit="{opening}",
    description="Times a circuit breaker opened on another service",
)

RETRIED_STATUSES = frozenset((429, 502, 503, 504))


def _asks_again(response: httpx.Response) -> bool:
    """The neighbour answered, but asking again may get a better answer."""
    return response.status_code in RETRIED_STATUSES


# What tenacity retries; the first attempt, made before it, is judged by the same two halves.
_RETRIED = retry_if_exception_type(httpx.TransportError) | retry_if_result(_asks_again)


@dataclass(frozen=True)
class CallPolicy:
    """How patient a service is with one downstream. The defaults suit calls inside one cluster."""

    attempt_timeout: float = 2.0
    deadline: float = 10.0
    max_attempts: int = 6
    backoff_initial: float = 0.1
    backoff_max: float = 2.0
    breaker_threshold: int = 5
    breaker_open_seconds: float = 5.0
    max_concurrency: int = 64


class DownstreamUnavailableError(Exception):
    """The downstream gave no usable answer: unreachable, timed out, breaker open, or bulkhead full."""

    def __init__(self, downstream: str, reason: str) -> None:
        super().__init__(f"{downstream}: {reason}")
        self.downstream = downstream
        self.reason = reason


class _BreakerFailure(Exception):  # noqa: N818 - a signal to the breaker, unwrapped at once
    """A response that counts against the breaker; raised inside it, unwrapped outside."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def retry_after_seconds(response: httpx.Response) -> float | None:
    """`Retry-After` as seconds, from either of its forms (delta-seconds or an HTTP date)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _replaying(
    first: httpx.Response | httpx.TransportError,
    attempt: Callable[[], Awaitable[httpx.Response]],
) -> Callable[[], Awaitable[httpx.Response]]:
    """`attempt`, whose first call gives `first`, the outcome of an attempt made already."""
    outcomes = [first]

    async def replay_then_attempt() -> httpx.Response:
        if not outcomes:
            return await attempt()
        outcome = outcomes.pop()
        if isinstance(outcome, httpx.TransportError):
            raise outcome
        return outcome

    return replay_then_attempt


def _counts_against_breaker(response: httpx.Response) -> bool:
    # A 503 with Retry-After is the neighbour pushing back on purpose ("no drone free yet"), not the
    # neighbour failing; opening the breaker on it would also block the calls that free capacity.
    if response.status_code == 503 and "retry-after" in response.headers:
        return False
    return response.status_code >= 500


class ServiceClient:
    def __init__(
        self,
        name: str,
        base_url: str,
        policy: CallPolicy | None = None,
        *,
        breakers: AsyncCircuitBreakerFactory | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.policy = policy or CallPolicy()
        limits = httpx.Limits(
            max_connections=self.policy.max_concurrency,
            max_keepalive_connections=self.policy.max_concurrency,
        )
        self._transport = transport or AiohttpTransport(limits=limits)
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=self.policy.attempt_timeout,
            limits=limits,
            transport=self._transport,
        )
        self._origin = str(self._http.base_url).rstrip("/")
        # Instruments the transport itself, which `_send` calls.
        current_telemetry().instrument_client(self._http)
        self._bulkhead = asyncio.Semaphore(self.policy.max_concurrency)
        self._breakers = breakers or AsyncCircuitBreakerFactory(
            default_threshold=self.policy.breaker_threshold,
            default_ttl=self.policy.breaker_open_seconds,
        )
        self._breakers.add_listener(self._on_breaker_event)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> ServiceClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PATCH", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", path, **kwargs)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> httpx.Response:
        """Call the downstream; `deadline` (seconds from now) overrides the policy's for this call."""
        budget = self.policy.deadline if deadline is None else deadline
        ends_at = time.monotonic() + budget
        outgoing = dict(headers or {})
        if (request_id := current_request_id()) is not None:
            outgoing.setdefault("X-Request-ID", request_id)
        # Absolute: httpx joins a relative URL to the base by parsing both again, 20 µs a call.
        url = self._origin + (path if path.startswith("/") else f"/{path}")

        async def attempt() -> httpx.Response:
            remaining = ends_at - time.monotonic()
            async with self._bulkhead:
                breaker = await self._breakers.get_breaker(self.name)
                try:
                    async with breaker:
                        response = await self._send(
                            self._http.build_request(
                                method,
                                url,
                                json=json,
                                params=params,
                                headers=outgoing,
                                timeout=max(0.001, min(self.policy.attempt_timeout, remaining)),
                            )
                        )
                        if _counts_against_breaker(response):
                            raise _BreakerFailure(response)
                        return response
                except _BreakerFailure as failure:
                    return failure.response

        try:
            async with asyncio.timeout(budget):
                # Nearly every call is answered at its first attempt, so only a call that is to be
                # retried builds tenacity's machinery (a quarter of a call's CPU), which then goes on
                # from that first outcome as from its own.
                try:
                    response: httpx.Response = await attempt()
                except httpx.TransportError as exc:
                    first: httpx.Response | httpx.TransportError = exc
                else:
                    if not _asks_again(response):
                        return response
                    first = response
                retrying = AsyncRetrying(
                    retry=_RETRIED,
                    wait=self._wait,
                    stop=stop_after_attempt(self.policy.max_attempts)
                    | stop_before_delay(ends_at - time.monotonic()),
                    retry_error_callback=self._give_up,
                    before_sleep=self._log_retry(method, path),
                )
                retried: httpx.Response = await retrying(_replaying(first, attempt))
                return retried
        except OpenedState:
            raise DownstreamUnavailableError(self.name, "circuit open") from None
        except TimeoutError:
            raise DownstreamUnavailableError(
                self.name, f"no answer within {budget:.1f} s"
            ) from None
        except httpx.TransportError as exc:
            raise DownstreamUnavailableError(self.name, f"{type(exc).__name__}: {exc}") from exc

    async def _send(self, request: httpx.Request) -> httpx.Response:
        response = await self._transport.handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_random_exponential(
            multiplier=self.policy.backoff_initial, max=self.policy.backoff_max
        )(state)
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            requested = retry_after_seconds(outcome.result())
            if requested is not None:
                return max(backoff, requested)
        return backoff

    @staticmethod
    def _give_up(state: RetryCallState) -> httpx.Response:
        """Out of attempts or time: hand back the last response, or raise the last error."""
        assert state.outcome is not None
        response: httpx.Response = state.outcome.result()  # re-raises a transport error
        return response

    def _log_retry(self, method: str, path: str) -> Any:
        def before_sleep(state: RetryCallState) -> None:
            outcome = state.outcome
            assert outcome is not None  # tenacity sleeps only after an attempt
            failure = outcome.exception()
            what = type(failure).__name__ if failure else f"HTTP {outcome.result().status_code}"
            retries.add(1, {"downstream": self.name, "reason": what})
            log.info(
                "retrying %s %s on %s in %.2f s (attempt %d): %s",
                method,
                path,
                self.name,
                state.upcoming_sleep,
                state.attempt_number,
                repr(failure) if failure else what,
            )

        return before_sleep

    def _on_breaker_event(self, name: str, event_type: str, event: Any) -> None:
        if event_type == "state_changed":
            state = getattr(event, "state", "?")
            log.warning("circuit breaker for %s is now %s", name, state)
            if state == "opened":
                breaker_openings.add(1, {"downstream": name})
