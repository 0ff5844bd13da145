"""OpenTelemetry traces, metrics and logs, exported where the configuration says, and nowhere otherwise.

- `APPLICATIONINSIGHTS_CONNECTION_STRING` set: Azure Monitor, through Microsoft's OpenTelemetry
  distribution (`azure-monitor-opentelemetry`), which also traces the Azure SDKs (Cosmos DB). In the
  cluster it is a secret: a file of that name in `SECRETS_DIR`, like every other secret setting.
- `OTEL_EXPORTER_OTLP_ENDPOINT` (or a per-signal `OTEL_EXPORTER_OTLP_*_ENDPOINT`) set: OTLP over HTTP,
  to a collector. With both set, both receive everything.
- Neither: no provider, no instrumentation, no cost. The code's own spans and metrics go to the API's
  no-op implementations.

The standard `OTEL_*` variables (sampler, resource attributes, export intervals, headers, `OTEL_SDK_
DISABLED`) are honoured by the SDK itself. The services are instrumented explicitly in both cases, the
same way: the FastAPI app (server spans, `http.server.request.duration`), each `ServiceClient`'s httpx
client (client spans, `http.client.request.duration`), and the stores (spans per store call).

The SDK, the exporters and the instrumentations are imported inside the functions that need them, so a
service that exports nothing does not pay for importing them.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from opentelemetry import metrics, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from servicekit.settings import DEFAULT_SECRETS_DIR

if TYPE_CHECKING:
    import httpx
    from fastapi import FastAPI

log = logging.getLogger(__name__)

SERVICE_NAMESPACE = "shipping"
_AZURE_MONITOR = "APPLICATIONINSIGHTS_CONNECTION_STRING"
_OTLP_ENDPOINTS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
)
# Kubernetes facts the charts pass through the downward API; OTEL_RESOURCE_ATTRIBUTES works as well.
_KUBERNETES_ATTRIBUTES = {
    "k8s.pod.name": "K8S_POD_NAME",
    "k8s.namespace.name": "K8S_NAMESPACE_NAME",
    "k8s.node.name": "K8S_NODE_NAME",
}


@dataclass
class Telemetry:
    """What `configure_telemetry` set up; `enabled` is False when nothing is exported."""

    enabled: bool = False
    exporters: list[str] = field(default_factory=list)

    def instrument_app(self, app: FastAPI) -> None:
        if not self.enabled:
            return
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app,
            server_request_hook=_pseudonymise_query,
            excluded_urls="livez,readyz,healthz",
            exclude_spans=["receive", "send"],
        )

    def instrument_client(self, client: httpx.AsyncClient) -> None:
        if not self.enabled:
            return
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        HTTPXClientInstrumentor.instrument_client(client)


_current = Telemetry()


def current_telemetry() -> Telemetry:
    return _current


def configure_telemetry(service: str, version: str, environment: str) -> Telemetry:
    """Set up the providers and exporters once per process, as the environment says."""
    global _current
    if _current.enabled or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return _current
    connection_string = azure_monitor_connection_string()
    azure = bool(connection_string)
    otlp = any(os.environ.get(name) for name in _OTLP_ENDPOINTS)
    if not (azure or otlp):
        return _current

    # The stable HTTP semantic conventions (http.server.request.duration, url.path, ...).
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create(
        {
            "service.name": service,
            "service.namespace": SERVICE_NAMESPACE,
            "service.version": version,
            "deployment.environment.name": environment,
            **{
                attribute: os.environ[variable]
                for attribute, variable in _KUBERNETES_ATTRIBUTES.items()
                if os.environ.get(variable)
            },
        }
    )
    pipelines = _otlp_pipelines() if otlp else {}
    if azure:
        from azure.monitor.opentelemetry import configure_azure_monitor

        configure_azure_monitor(
            connection_string=connection_string,
            resource=resource,
            logger_name="",
            span_processors=pipelines.get("spans", []),
            metric_readers=pipelines.get("metrics", []),
            log_record_processors=pipelines.get("logs", []),
            # The app and the service clients are instrumented explicitly, as without Azure Monitor.
            instrumentation_options={
                name: {"enabled": False}
                for name in (
                    "django",
                    "fastapi",
                    "flask",
                    "httpx",
                    "psycopg2",
                    "requests",
                    "urllib",
                    "urllib3",
                )
            },
        )
    else:
        _install_sdk_providers(resource, pipelines)
    _current = Telemetry(enabled=True, exporters=["azure-monitor"] * azure + ["otlp"] * otlp)
    log.info("telemetry exported to %s", ", ".join(_current.exporters))
    return _current


def azure_monitor_connection_string() -> str:
    """From the environment, or from the file the Key Vault CSI driver mounts in SECRETS_DIR."""
    if value := os.environ.get(_AZURE_MONITOR, "").strip():
        return value
    secret = Path(os.environ.get("SECRETS_DIR", DEFAULT_SECRETS_DIR)) / _AZURE_MONITOR
    return secret.read_text().strip() if secret.is_file() else ""


def _otlp_pipelines() -> dict[str, list[Any]]:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter,
    )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter,
    )
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return {
        "spans": [BatchSpanProcessor(OTLPSpanExporter())],
        "metrics": [PeriodicExportingMetricReader(OTLPMetricExporter())],
        "logs": [BatchLogRecordProcessor(OTLPLogExporter())],
    }


def _install_sdk_providers(resource: Any, pipelines: dict[str, list[Any]]) -> None:
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    tracer_provider = TracerProvider(resource=resource)
    for processor in pipelines["spans"]:
        tracer_provider.add_span_processor(processor)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(
        MeterProvider(resource=resource, metric_readers=pipelines["metrics"])
    )
    logger_provider = LoggerProvider(resource=resource)
    for processor in pipelines["logs"]:
        logger_provider.add_log_record_processor(processor)
    set_logger_provider(logger_provider)
    logging.getLogger().addHandler(LoggingHandler(logger_provider=logger_provider))
    _trace_azure_sdks()


def _trace_azure_sdks() -> None:
    """Spans from the Azure SDKs (Cosmos DB) go through OpenTelemetry too; the distro does this itself."""
    try:
        from azure.core.settings import settings
    except ImportError:
        return
    settings.tracing_implementation = "opentelemetry"


def pseudonym(value: str) -> str:
    """A stable stand-in for a personal identifier (an owner id) in logs and telemetry."""
    return "anon-" + hashlib.sha256(value.encode()).hexdigest()[:16]


_PERSONAL_QUERY_PARAMETERS = ("ownerId",)


def _pseudonymise_query(span: trace.Span, scope: dict[str, Any]) -> None:
    query = scope.get("query_string", b"").decode("latin-1")
    if not span.is_recording() or not any(f"{p}=" in query for p in _PERSONAL_QUERY_PARAMETERS):
        return
    pairs = [
        (key, pseudonym(value) if key in _PERSONAL_QUERY_PARAMETERS else value)
        for key, value in parse_qsl(query, keep_blank_values=True)
    ]
    span.set_attribute("url.query", urlencode(pairs))


# --- Background work and its trace ------------------------------------------------------------------
_propagator = TraceContextTextMapPropagator()


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, to store with work that outlives the request."""
    if not _current.enabled:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def background_span(
    tracer: trace.Tracer,
    name: str,
    traceparent: str | None,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> Iterator[trace.Span]:
    """A span for work a request started but that runs later or elsewhere.

    Inside the request's own trace (a task the request started) it is a child like any other span.
    Elsewhere (a sweeper resuming a delivery, a replica sending a notification) it starts a trace of
    its own, linked to the request's, so each can be found from the other.
    """
    if not _current.enabled:
        yield trace.INVALID_SPAN
        return
    links: list[trace.Link] = []
    if traceparent:
        origin = trace.get_current_span(_propagator.extract({"traceparent": traceparent}))
        origin_context = origin.get_span_context()
        current_context = trace.get_current_span().get_span_context()
        if origin_context.is_valid and origin_context.trace_id != current_context.trace_id:
            links.append(trace.Link(origin_context))
    with tracer.start_as_current_span(name, links=links, attributes=attributes) as span:
        yield span
