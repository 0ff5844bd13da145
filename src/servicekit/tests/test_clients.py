"""The resilient client against a real HTTP server that misbehaves on purpose."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from servicekit.clients import CallPolicy, DownstreamUnavailableError, ServiceClient
from servicekit.context import set_request_id
from servicekit.testing import free_port, serve_in_thread


@dataclass
class Neighbour:
    """The server's behaviour, which a test changes while the server runs."""

    calls: Counter[str] = field(default_factory=Counter)
    failures_left: dict[str, int] = field(default_factory=dict)
    failure_status: int = 503
    failure_headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    in_flight: int = 0
    most_in_flight: int = 0
    seen_request_ids: list[str | None] = field(default_factory=list)
    seen_cookies: list[str | None] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        key = request.path_params["key"]
        self.calls[key] += 1
        self.seen_request_ids.append(request.headers.get("x-request-id"))
        self.seen_cookies.append(request.headers.get("cookie"))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        if self.failures_left.get(key, 0) > 0:
            self.failures_left[key] -= 1
            return Response(status_code=self.failure_status, headers=self.failure_headers)
        answer = JSONResponse({"key": key, "call": self.calls[key]})
        answer.set_cookie("session", key)
        return answer


@pytest.fixture
def neighbour_server() -> Iterator[tuple[str, Neighbour]]:
    neighbour = Neighbour()
    app = Starlette(routes=[Route("/things/{key}", neighbour.handle, methods=["GET", "PUT"])])
    with serve_in_thread(app) as url:
        yield url, neighbour


@pytest.fixture
def neighbour(neighbour_server: tuple[str, Neighbour]) -> Neighbour:
    return neighbour_server[1]


FAST = CallPolicy(backoff_initial=0.01, backoff_max=0.05, deadline=5.0, attempt_timeout=2.0)


@pytest.fixture
async def client(neighbour_server: tuple[str, Neighbour]) -> AsyncIterator[ServiceClient]:
    url, _ = neighbour_server
    async with ServiceClient("neighbour", url, FAST) as client:
        yield client


@pytest.mark.parametrize("status", [502, 503, 504, 429])
async def test_transient_statuses_are_retried_until_success(
    client: ServiceClient, neighbour: Neighbour, status: int
) -> None:
    neighbour.failure_status = status
    neighbour.failures_left["a"] = 2

    response = await client.get("/things/a")

    assert response.status_code == 200
    assert neighbour.calls["a"] == 3


@pytest.mark.parametrize("status", [400, 404, 409, 422, 500])
async def test_other_statuses_are_answered_at_once(
    client: ServiceClient, neighbour: Neighbour, status: int
) -> None:
    neighbour.failure_status = status
    neighbour.failures_left["b"] = 1

    response = await client.put("/things/b", json={})

    assert response.status_code == status
    assert neighbour.calls["b"] == 1


async def test_retry_after_is_waited_out(client: ServiceClient, neighbour: Neighbour) -> None:
    neighbour.failure_headers = {"Retry-After": "1"}
    neighbour.failures_left["c"] = 1

    started = time.monotonic()
    response = await client.get("/things/c")

    assert response.status_code == 200
    assert time.monotonic() - started >= 1.0
    assert neighbour.calls["c"] == 2


async def test_retry_after_beyond_the_deadline_returns_the_answer_instead_of_sleeping(
    client: ServiceClient, neighbour: Neighbour
) -> None:
    neighbour.failure_headers = {"Retry-After": "30"}
    neighbour.failures_left["d"] = 5

    started = time.monotonic()
    response = await client.get("/things/d", deadline=1.0)

    assert response.status_code == 503
    assert time.monotonic() - started < 1.0
    assert neighbour.calls["d"] == 1


async def test_retries_stop_at_the_deadline(client: ServiceClient, neighbour: Neighbour) -> None:
    neighbour.delay = 5.0

    started = time.monotonic()
    with pytest.raises(DownstreamUnavailableError):
        await client.get("/things/e", deadline=0.5)

    assert time.monotonic() - started < 1.5


async def test_a_retry_goes_on_from_the_first_attempt(
    client: ServiceClient, neighbour: Neighbour, caplog: pytest.LogCaptureFixture
) -> None:
    neighbour.failures_left["r"] = 1

    with caplog.at_level(logging.INFO, logger="servicekit.clients"):
        response = await client.get("/things/r")

    assert response.status_code == 200
    assert neighbour.calls["r"] == 2
    retried = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retrying")]
    assert len(retried) == 1
    assert "(attempt 1): HTTP 503" in retried[0]


async def test_a_connection_dropped_at_the_first_attempt_is_retried() -> None:
    connections = 0

    async def drop_the_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        if connections > 1:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(drop_the_first, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, ServiceClient("flaky", f"http://127.0.0.1:{port}", FAST) as client:
        response = await client.get("/anything")

    assert response.status_code == 200
    assert response.content == b"ok"
    assert connections == 2


async def test_unreachable_neighbour_is_reported_after_the_retries() -> None:
    policy = CallPolicy(backoff_initial=0.01, backoff_max=0.02, max_attempts=3)
    async with ServiceClient("nobody", f"http://127.0.0.1:{free_port()}", policy) as client:
        with pytest.raises(DownstreamUnavailableError, match=r"(?i)cannot connect"):
            await client.get("/anything")


async def test_breaker_opens_then_half_opens(
    neighbour_server: tuple[str, Neighbour], neighbour: Neighbour
) -> None:
    url, _ = neighbour_server
    policy = CallPolicy(breaker_threshold=3, breaker_open_seconds=0.5, max_attempts=1)
    neighbour.failure_status = 500
    neighbour.failures_left["f"] = 3
    async with ServiceClient("breakable", url, policy) as client:
        for _ in range(3):
            assert (await client.get("/things/f")).status_code == 500

        with pytest.raises(DownstreamUnavailableError, match="circuit open"):
            await client.get("/things/f")
        assert neighbour.calls["f"] == 3, "an open breaker does not call the neighbour"

        await asyncio.sleep(0.6)
        assert (await client.get("/things/f")).status_code == 200, "half-open lets a call through"
        assert (await client.get("/things/f")).status_code == 200, "and a success closes it"
        assert neighbour.calls["f"] == 5


async def test_pushback_with_retry_after_does_not_open_the_breaker(
    neighbour_server: tuple[str, Neighbour], neighbour: Neighbour
) -> None:
    url, _ = neighbour_server
    policy = CallPolicy(breaker_threshold=2, max_attempts=1)
    neighbour.failure_headers = {"Retry-After": "1"}
    neighbour.failures_left["g"] = 5
    async with ServiceClient("busy", url, policy) as client:
        for _ in range(5):
            assert (await client.get("/things/g")).status_code == 503
        assert (await client.get("/things/g")).status_code == 200


async def test_bulkhead_bounds_the_calls_in_flight(
    neighbour_server: tuple[str, Neighbour], neighbour: Neighbour
) -> None:
    url, _ = neighbour_server
    neighbour.delay = 0.2
    async with ServiceClient("narrow", url, CallPolicy(max_concurrency=2)) as client:
        responses = await asyncio.gather(*(client.get(f"/things/h{i}") for i in range(6)))

    assert [r.status_code for r in responses] == [200] * 6
    assert neighbour.most_in_flight == 2


async def test_request_id_travels_to_the_neighbour(
    client: ServiceClient, neighbour: Neighbour
) -> None:
    set_request_id("req-42")

    await client.get("/things/i")

    assert neighbour.seen_request_ids == ["req-42"]


async def test_cookies_a_neighbour_sets_are_not_sent_back(
    client: ServiceClient, neighbour: Neighbour
) -> None:
    first = await client.get("/things/c")
    await client.get("/things/c")

    assert "session=c" in first.headers["set-cookie"]
    assert neighbour.seen_cookies == [None, None]
