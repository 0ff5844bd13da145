"""JSON logs on stdout, one object a line, each carrying the service, the request id and the trace.

Container platforms collect stdout; one JSON object per line is what Azure Monitor and kubectl users
can filter on without a parser per service.
"""

from __future__ import annotations

import logging
import sys

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from servicekit.context import current_request_id


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.request_id = current_request_id()
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            record.trace_id = format(span.trace_id, "032x")
            record.span_id = format(span.span_id, "016x")
        record.__dict__.pop("color_message", None)  # uvicorn's terminal variant of the message
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every log record, uvicorn's included, through one JSON handler on stdout."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter(
            "{levelname}{name}{message}{service}{request_id}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )
    )
    handler.addFilter(_ContextFilter(service))

    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # The level of the libraries that log every HTTP request they send at INFO: their warnings and
    # errors come through.
    quiet = max(logging.WARNING, root.level)
    # The Azure SDKs (Cosmos DB, identity, the Monitor exporter) log requests and responses, headers
    # included: several lines per store call, shown only when the service itself logs at DEBUG.
    logging.getLogger("azure").setLevel(logging.NOTSET if root.level <= logging.DEBUG else quiet)

    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # servicekit writes its own access log, with the request id and the duration.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every request it sends at INFO: the callee's access log has each one already, and
    # a failed call is logged by the ServiceClient that retries it.
    logging.getLogger("httpx").setLevel(quiet)
