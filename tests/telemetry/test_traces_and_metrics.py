"""Telemetry across the gateway and the services, exported over OTLP to a receiver the test reads.

One delivery request through the gateway must make one trace holding the delivery service's server
span and, from the workflow it starts, the client and server spans of the calls to the package and
scheduler services; the flight's notifications start traces of their own, linked to it; metrics and
logs are exported; and the owner's id appears in clear in none of it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from e2e_support import TERMINAL, delivery_request, eventually, wait_for_stage
from otlp_receiver import Received, ReceivedSpan, otlp_receiver

from devstack.gateway import GatewayLimits
from devstack.stack import Ports, Stack, StackSettings
from servicekit.testing import free_port

SERVER, CLIENT = 2, 3  # OTLP span kinds
OWNER = "telemetry-owner-7"


@pytest.fixture(scope="module")
def telemetry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Received]]:
    with otlp_receiver() as (receiver_url, received):
        settings = StackSettings(
            data_dir=tmp_path_factory.mktemp("telemetry"),
            ports=Ports(
                gateway=free_port(),
                delivery=free_port(),
                package=free_port(),
                scheduler=free_port(),
            ),
            limits=GatewayLimits(rate_limit="100r/s", rate_burst=200),
            env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver_url,
                "OTEL_BSP_SCHEDULE_DELAY": "200",
                "OTEL_BLRP_SCHEDULE_DELAY": "200",
                "OTEL_METRIC_EXPORT_INTERVAL": "1000",
                "SCHEDULER_SIM_SPEEDUP": "300",
            },
        )
        with Stack(settings) as stack:
            yield stack, received


def find(spans: list[ReceivedSpan], service: str, kind: int, path: str) -> list[ReceivedSpan]:
    return [
        span
        for span in spans
        if span.service == service
        and span.kind == kind
        and path in str(span.attributes.get("url.path", span.attributes.get("url.full", span.name)))
    ]


def test_one_request_through_the_gateway_makes_one_trace(telemetry: tuple[Stack, Received]) -> None:
    stack, received = telemetry
    trace_id = secrets.token_hex(16)
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as gateway:
        accepted = gateway.post(
            "/api/deliveryrequests",
            json=delivery_request(ownerId=OWNER),
            headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
        )
        assert accepted.status_code == 202
        delivery_id = accepted.json()["deliveryId"]
        assert wait_for_stage(gateway, delivery_id, TERMINAL)["stage"] == "Completed"

    def complete() -> bool:
        spans = received.trace(trace_id)
        return all(
            (
                find(spans, "delivery", SERVER, "/api/deliveryrequests"),
                find(spans, "delivery", CLIENT, "/api/packages/"),
                find(spans, "package", SERVER, "/api/packages/"),
                find(spans, "delivery", CLIENT, "/api/dronedeliveries/"),
                find(spans, "scheduler", SERVER, "/api/dronedeliveries/"),
            )
        )

    eventually(complete, f"the delivery, package and scheduler spans in trace {trace_id}")
    spans = received.trace(trace_id)
    assert {span.service for span in spans} == {"delivery", "package", "scheduler"}
    workflow = [span for span in spans if span.name.startswith("delivery workflow")]
    assert workflow, "each workflow step has its span"
    ids = {span.span_id for span in spans}
    orphans = [span for span in spans if span.parent_span_id and span.parent_span_id not in ids]
    # Only the root's parent (the client's own span, which the client never exported) is missing.
    assert {span.parent_span_id for span in orphans} <= {
        span.parent_span_id for span in find(spans, "delivery", SERVER, "/api/deliveryrequests")
    }

    # The flight's notifications run later in the scheduler's loop: traces of their own, linked.
    eventually(
        lambda: any(
            trace_id in span.links and span.name.startswith("scheduler notify")
            for span in list(received.spans)
        ),
        "notification spans linked to the request's trace",
    )


def test_metrics_are_exported_by_every_service(telemetry: tuple[Stack, Received]) -> None:
    stack, received = telemetry
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as gateway:
        delivery_id = gateway.post("/api/deliveryrequests", json=delivery_request()).json()[
            "deliveryId"
        ]
        wait_for_stage(gateway, delivery_id, TERMINAL)

    def exported(name: str, services: set[str]) -> Callable[[], bool]:
        return lambda: services <= received.metrics.get(name, set())

    eventually(
        exported("http.server.request.duration", {"delivery", "package", "scheduler"}),
        "request durations from every service",
    )
    eventually(
        exported("http.client.request.duration", {"delivery", "scheduler"}), "client durations"
    )
    eventually(exported("delivery.deliveries.finished", {"delivery"}), "deliveries by outcome")
    eventually(exported("scheduler.drones", {"scheduler"}), "the fleet gauge", timeout=30)


def test_logs_are_exported_with_their_trace(telemetry: tuple[Stack, Received]) -> None:
    stack, received = telemetry
    trace_id = secrets.token_hex(16)
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as gateway:
        # A request that goes wrong is logged (see servicekit.requests): its line carries the trace.
        missing = gateway.get(
            "/api/deliveries/no-such-delivery",
            headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
        )
        assert missing.status_code == 404

    def logged_in_the_trace() -> bool:
        with received.lock:
            return any(record["trace_id"] == trace_id for record in received.log_records)

    eventually(logged_in_the_trace, "a log record carrying the request's trace id")


def test_owner_ids_are_never_in_clear(telemetry: tuple[Stack, Received]) -> None:
    stack, received = telemetry
    now = datetime.now(UTC)
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as gateway:
        summary = gateway.get(
            "/api/deliveries/summary",
            params={"ownerId": OWNER, "year": now.year, "month": now.month},
        )
        assert summary.status_code == 200
    eventually(
        lambda: any("summary" in span.name for span in list(received.spans)), "the summary's span"
    )
    time.sleep(1)  # a last export

    with received.lock:
        exported = repr(received.spans) + repr(received.log_records)
    assert OWNER not in exported
    for log_file in Path(stack.log_dir).glob("*.log"):
        assert OWNER not in log_file.read_text(), log_file.name
