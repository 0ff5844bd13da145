"""The outermost layer of every service: request ids, the access log, and the last-resort 500.

Written as plain ASGI rather than `BaseHTTPMiddleware`: it runs on every request, and a plain ASGI
layer costs a function call where the other costs a task and a stream per request.

The access log is at INFO for the requests that went wrong (4xx, 5xx) and at DEBUG for the rest: every
public request is in the gateway's access log already, and every request in the traces, so at the
default level a service logs what needs a look. Writing a line for every success cost a quarter of a
service's throughput; `<PREFIX>LOG_LEVEL=DEBUG` shows them all.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicekit.context import set_request_id
from servicekit.problems import problem_response

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_QUIET_PATHS = frozenset(("/livez", "/readyz", "/healthz"))

access_log = logging.getLogger("servicekit.access")
error_log = logging.getLogger("servicekit.errors")


def access_level(path: str, status: int) -> int:
    if status >= 500:
        return logging.WARNING
    if status >= 400 and path not in _QUIET_PATHS:
        return logging.INFO
    return logging.DEBUG


def request_id_from(raw: bytes | None) -> str:
    """The caller's request id when it is sane; a new one otherwise (never trust it into a log as is)."""
    if raw is not None:
        candidate = raw.decode("latin-1")
        if _VALID_REQUEST_ID.match(candidate):
            return candidate
    return uuid.uuid4().hex


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        headers = dict(scope["headers"])
        request_id = request_id_from(headers.get(REQUEST_ID_HEADER.encode()))
        set_request_id(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    (REQUEST_ID_HEADER.encode(), request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception:
            error_log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if response_started:
                raise
            response = problem_response(
                Request(scope),
                500,
                detail="The service failed unexpectedly. The error was logged with this request id.",
            )
            await response(scope, receive, send_with_request_id)
        finally:
            level = access_level(scope["path"], status)
            if access_log.isEnabledFor(level):
                access_log.log(
                    level,
                    "%s %s %d",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={
                        "http.method": scope["method"],
                        "http.path": scope["path"],
                        "http.status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
