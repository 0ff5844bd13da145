"""The gateway's one nginx config, rendered from its template and run by real nginx.

Behind it stands a stand-in for the delivery service that echoes what reached it, so these tests see
exactly what the gateway lets through, adds and answers itself. The end-to-end tests run the same
template in front of the real services.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from devstack.gateway import (
    LOCAL_PROXIES,
    GatewayLimits,
    find_nginx,
    gateway_values,
    nginx_command,
    write_config,
)
from servicekit.testing import free_port, serve_in_thread

PROBLEM_JSON = "application/problem+json"


async def echo(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "headers": dict(request.headers),
            "body_bytes": len(await request.body()),
        },
        headers={"X-Request-ID": "from-upstream"},
    )


@pytest.fixture(scope="module")
def delivery_stand_in() -> Iterator[str]:
    app = Starlette(
        routes=[Route("/{path:path}", echo, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])]
    )
    with serve_in_thread(app) as url:
        yield url.removeprefix("http://")


class Gateway:
    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log

    def access_log(self) -> list[dict[str, object]]:
        return [
            json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")
        ]

    def log_line(self, request_id: str) -> dict[str, object]:
        """The one access log line of the request (the log is flushed every second)."""
        deadline = time.monotonic() + 5
        while not (lines := [x for x in self.access_log() if x.get("request_id") == request_id]):
            assert time.monotonic() < deadline, f"no access log line for {request_id} within 5 s"
            time.sleep(0.1)
        assert len(lines) == 1
        return lines[0]


@contextmanager
def running_gateway(
    tmp: Path, upstream: str, limits: GatewayLimits, trusted_proxies: str = LOCAL_PROXIES
) -> Iterator[Gateway]:
    port = free_port()
    config = write_config(
        tmp / "nginx.conf",
        gateway_values(
            listen_port=port,
            delivery_upstream=upstream,
            runtime_dir=tmp / "run",
            limits=limits,
            trusted_proxies=trusted_proxies,
        ),
    )
    log = tmp / "gateway.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            nginx_command(find_nginx(), config), stdout=sink, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"{url}/healthz")
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"nginx did not start:\n{log.read_text()}")
                time.sleep(0.05)
        yield Gateway(url, log)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def gateway(delivery_stand_in: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    limits = GatewayLimits(max_body_size="1k", rate_limit="1000r/s", rate_burst=1000)
    with running_gateway(tmp_path_factory.mktemp("gateway"), delivery_stand_in, limits) as running:
        yield running


def test_the_rendered_template_is_valid_nginx(delivery_stand_in: str, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "nginx.conf",
        gateway_values(
            listen_port=free_port(),
            delivery_upstream=delivery_stand_in,
            runtime_dir=tmp_path / "run",
            limits=GatewayLimits(),
        ),
    )
    result = subprocess.run(
        [*nginx_command(find_nginx(), config), "-t"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_healthz_is_answered_by_the_gateway_itself(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.url}/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/deliveryrequests"),
        ("PATCH", "/api/deliveryrequests/d1"),
        ("DELETE", "/api/deliveryrequests/d1"),
        ("GET", "/api/deliveries/d1"),
        ("GET", "/api/deliveries/d1/status"),
        ("GET", "/api/deliveries/d1/events"),
        ("GET", "/api/deliveries/d1/owner"),
        ("GET", "/api/deliveries/summary"),
        ("POST", "/api/deliveries/d1/notifymerequests"),
    ],
)
def test_public_routes_reach_the_delivery_service(gateway: Gateway, method: str, path: str) -> None:
    response = httpx.request(method, f"{gateway.url}{path}?ownerId=a", json={})

    assert response.status_code == 200
    assert (response.json()["method"], response.json()["path"]) == (method, path)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/deliveries/d1/events"),
        ("POST", "/api/deliveries/d1/confirmations"),
        ("PUT", "/api/deliveries/d1"),
        ("GET", "/api/packages/p1"),
        ("PUT", "/api/packages/p1"),
        ("GET", "/api/packages/summary"),
        ("PUT", "/api/dronedeliveries/d1"),
        ("GET", "/api/dronedeliveries/utilization"),
        ("GET", "/api/drones"),
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
        ("GET", "/api/deliveries/d1/../../packages/p1"),
        ("GET", "/api/deliveries/d1/%2e%2e/%2e%2e/packages/p1"),
        ("POST", "/api/deliveries/d1/notifymerequests/../events"),
    ],
)
def test_internal_and_unknown_routes_are_not_found_from_outside(
    gateway: Gateway, method: str, path: str
) -> None:
    response = httpx.request(method, f"{gateway.url}{path}", json={})

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["status"] == 404
    assert "method" not in response.json(), "never reached the service"


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/deliveryrequests", "POST"),
        ("/api/deliveryrequests/d1", "DELETE, PATCH"),
        ("/api/deliveries/d1", "GET"),
        ("/api/deliveries/d1/events", "GET"),
        ("/api/deliveries/summary", "GET"),
        ("/api/deliveries/d1/notifymerequests", "POST"),
    ],
)
@pytest.mark.parametrize("method", ["TRACE", "QUERY", "OPTIONS"])
def test_another_method_on_a_public_path_is_a_405_naming_the_public_methods(
    gateway: Gateway, method: str, path: str, allowed: str
) -> None:
    response = httpx.request(method, f"{gateway.url}{path}")

    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["x-request-id"]
    assert "method" not in response.json(), "never reached the service"


def test_the_summary_is_not_taken_for_a_delivery_id(gateway: Gateway) -> None:
    # PUT /api/deliveries/{id} is internal (404), but /api/deliveries/summary is a public resource.
    response = httpx.put(f"{gateway.url}/api/deliveries/summary", json={})

    assert (response.status_code, response.headers["allow"]) == (405, "GET")
    assert "method" not in response.json(), "never reached the service"


def test_request_id_is_generated_passed_on_and_returned(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.url}/api/deliveries/d1")

    request_id = response.headers["x-request-id"]
    assert len(request_id) == 32
    assert response.json()["headers"]["x-request-id"] == request_id
    assert response.headers.get_list("x-request-id") == [request_id], (
        "the upstream's copy is hidden"
    )


def test_a_clients_request_id_is_kept(gateway: Gateway) -> None:
    response = httpx.get(
        f"{gateway.url}/api/deliveries/d1", headers={"X-Request-ID": "client-id-1"}
    )

    assert response.headers["x-request-id"] == "client-id-1"
    assert response.json()["headers"]["x-request-id"] == "client-id-1"


def test_a_clients_traceparent_is_passed_on(gateway: Gateway) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    response = httpx.get(f"{gateway.url}/api/deliveries/d1", headers={"traceparent": traceparent})

    assert response.json()["headers"]["traceparent"] == traceparent


def test_without_a_traceparent_the_gateway_starts_the_trace(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.url}/api/deliveries/d1")

    version, trace_id, span_id, flags = response.json()["headers"]["traceparent"].split("-")
    assert (version, flags) == ("00", "01")
    assert trace_id == response.headers["x-request-id"]
    assert len(span_id) == 16


def test_a_body_over_the_limit_is_a_413_problem(gateway: Gateway) -> None:
    response = httpx.post(f"{gateway.url}/api/deliveryrequests", content=b"x" * 2048)

    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["requestId"] == response.headers["x-request-id"]


def test_access_log_is_json_with_request_id_and_upstream_timing(gateway: Gateway) -> None:
    httpx.get(f"{gateway.url}/api/deliveries/logged", headers={"X-Request-ID": "log-line-1"})

    line = gateway.log_line("log-line-1")
    assert line["status"] == 200
    assert line["path"] == "/api/deliveries/logged"
    assert isinstance(line["duration_s"], float)
    assert float(str(line["upstream_s"])) >= 0


def test_requests_over_the_rate_limit_are_429_problems(
    delivery_stand_in: str, tmp_path: Path
) -> None:
    limits = GatewayLimits(rate_limit="2r/s", rate_burst=3)
    with running_gateway(tmp_path, delivery_stand_in, limits) as gateway:
        with httpx.Client(base_url=gateway.url) as client:
            statuses = [client.get("/api/deliveries/d1").status_code for _ in range(10)]
            limited = client.get("/api/deliveries/d1")

        assert statuses.count(200) <= 5
        assert 429 in statuses
        assert limited.status_code == 429
        assert limited.headers["content-type"] == PROBLEM_JSON
        assert limited.headers["retry-after"] == "1"
        assert limited.headers["x-request-id"]


def test_clients_behind_a_trusted_proxy_are_limited_each_on_its_own(
    delivery_stand_in: str, tmp_path: Path
) -> None:
    """Behind the ingress controller every request comes from the controller: the client it forwarded
    for is the one limited (and logged)."""
    limits = GatewayLimits(rate_limit="2r/s", rate_burst=3)
    with running_gateway(tmp_path, delivery_stand_in, limits) as gateway:
        with httpx.Client(base_url=gateway.url) as client:
            busy = [forwarded_get(client, "203.0.113.7").status_code for _ in range(10)]
            other = forwarded_get(client, "203.0.113.8", request_id="another-client")

        assert 429 in busy
        assert other.status_code == 200
        assert gateway.log_line("another-client")["client"] == "203.0.113.8"


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(
    delivery_stand_in: str, tmp_path: Path
) -> None:
    limits = GatewayLimits(rate_limit="2r/s", rate_burst=3)
    elsewhere = "192.0.2.0/24"  # the peer here, 127.0.0.1, is not a trusted proxy
    with running_gateway(tmp_path, delivery_stand_in, limits, elsewhere) as gateway:
        with httpx.Client(base_url=gateway.url) as client:
            for _ in range(10):
                forwarded_get(client, "203.0.113.7")
            spoofed = forwarded_get(client, "203.0.113.8", request_id="spoofed-client")

        assert spoofed.status_code == 429
        assert gateway.log_line("spoofed-client")["client"] == "127.0.0.1"


def forwarded_get(
    client: httpx.Client, address: str, request_id: str = "forwarded"
) -> httpx.Response:
    headers = {"X-Forwarded-For": address, "X-Request-ID": request_id}
    return client.get("/api/deliveries/d1", headers=headers)


def test_an_unreachable_delivery_service_is_a_502_problem(tmp_path: Path) -> None:
    with running_gateway(tmp_path, f"127.0.0.1:{free_port()}", GatewayLimits()) as gateway:
        response = httpx.get(f"{gateway.url}/api/deliveries/d1")

        assert response.status_code == 502
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.headers["retry-after"] == "1"
