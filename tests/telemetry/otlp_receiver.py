"""A local OTLP/HTTP receiver: what an OpenTelemetry Collector would get, kept in memory for assertions."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from servicekit.testing import serve_in_thread


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, object]
    links: tuple[str, ...]  # trace ids of linked spans


@dataclass
class Received:
    spans: list[ReceivedSpan] = field(default_factory=list)
    metrics: dict[str, set[str]] = field(default_factory=dict)  # metric name -> services
    log_records: list[dict[str, object]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self.lock:
            return [span for span in self.spans if span.trace_id == trace_id]


def _value(any_value: object) -> object:
    kind = any_value.WhichOneof("value")  # type: ignore[attr-defined]
    return getattr(any_value, kind) if kind else None


def _service(resource: object) -> str:
    for attribute in resource.attributes:  # type: ignore[attr-defined]
        if attribute.key == "service.name":
            return str(_value(attribute.value))
    return "?"


@contextmanager
def otlp_receiver() -> Iterator[tuple[str, Received]]:
    received = Received()

    async def body(request: Request) -> bytes:
        raw = await request.body()
        return gzip.decompress(raw) if request.headers.get("content-encoding") == "gzip" else raw

    async def traces(request: Request) -> Response:
        export = ExportTraceServiceRequest.FromString(await body(request))
        with received.lock:
            for resource_spans in export.resource_spans:
                service = _service(resource_spans.resource)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        received.spans.append(
                            ReceivedSpan(
                                service=service,
                                name=span.name,
                                kind=span.kind,
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_span_id=span.parent_span_id.hex(),
                                attributes={a.key: _value(a.value) for a in span.attributes},
                                links=tuple(link.trace_id.hex() for link in span.links),
                            )
                        )
        return Response(status_code=200, media_type="application/x-protobuf")

    async def metrics(request: Request) -> Response:
        export = ExportMetricsServiceRequest.FromString(await body(request))
        with received.lock:
            for resource_metrics in export.resource_metrics:
                service = _service(resource_metrics.resource)
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        received.metrics.setdefault(metric.name, set()).add(service)
        return Response(status_code=200, media_type="application/x-protobuf")

    async def logs(request: Request) -> Response:
        export = ExportLogsServiceRequest.FromString(await body(request))
        with received.lock:
            for resource_logs in export.resource_logs:
                service = _service(resource_logs.resource)
                for scope_logs in resource_logs.scope_logs:
                    for record in scope_logs.log_records:
                        received.log_records.append(
                            {
                                "service": service,
                                "body": _value(record.body),
                                "trace_id": record.trace_id.hex(),
                            }
                        )
        return Response(status_code=200, media_type="application/x-protobuf")

    app = Starlette(
        routes=[
            Route("/v1/traces", traces, methods=["POST"]),
            Route("/v1/metrics", metrics, methods=["POST"]),
            Route("/v1/logs", logs, methods=["POST"]),
        ]
    )
    with serve_in_thread(app) as url:
        yield url, received
