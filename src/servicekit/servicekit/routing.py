"""Requests reach the resource the service's OpenAPI document says their path names, at little cost.

`add_routes` puts a router's routes on the app's own router. FastAPI's `include_router` keeps the
router as a branch that every request whose path falls under it matches twice, once to choose the
branch and once inside it: the read of a delivery took 112 µs of the app's time so, and takes 98 with
its routes on the app's router, where they are matched once (docs/performance.md, the eighth round).

OpenAPI matches a concrete path before a templated one: `/api/packages/summary` is the monthly
summary, not the package "summary". FastAPI tries routes in order and takes the first whose path
and method both match, so `PUT /api/packages/summary` would reach `PUT /api/packages/{id}` and
create a package that GET could never read. `ConcretePathsFirst` answers such requests 405 instead,
and `allowed_methods` gives every 405 the methods of the path as the document has them.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from servicekit.problems import problem_response

_PARAMETER = re.compile(r"\\\{[^}/]+\\\}")
_METHODS = frozenset(("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"))

# What `add_api_route` takes that an APIRoute keeps under the same name: a route declared on a
# router already carries the router's prefix, tags, dependencies and responses.
_ROUTE_SETTINGS = tuple(
    name
    for name in inspect.signature(APIRouter.add_api_route).parameters
    if name not in ("self", "route_class_override")
)


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """Declare the router's routes on the app itself, in order, as if they had been written there.

    They are new routes of the app's router, so they see what the app gives its own: its
    `dependency_overrides` (tests), its default response class.
    """
    for route in router.routes:
        if isinstance(route, APIRoute):
            app.router.add_api_route(
                **{name: getattr(route, name) for name in _ROUTE_SETTINGS},
                route_class_override=type(route),
            )
        else:
            app.router.routes.append(route)


@dataclass(frozen=True)
class _PathItem:
    template: str
    pattern: re.Pattern[str]
    parameters: int
    methods: frozenset[str]


class DocumentedPaths:
    """The paths of an OpenAPI document, matched as OpenAPI matches them."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._items = [
            _PathItem(
                template,
                re.compile(_PARAMETER.sub("[^/]+", re.escape(template))),
                template.count("{"),
                frozenset(method.upper() for method in item if method.upper() in _METHODS),
            )
            for template, item in document.get("paths", {}).items()
        ]
        # Concrete paths that a templated path matches too: the only ones routing can get wrong.
        self.shadowed = {
            item.template: item.methods
            for item in self._items
            if item.parameters == 0
            and any(
                other.parameters and other.pattern.fullmatch(item.template) for other in self._items
            )
        }

    def methods(self, path: str) -> frozenset[str]:
        """The methods of the path item `path` matches, a concrete one before a templated one."""
        matching = [item for item in self._items if item.pattern.fullmatch(path)]
        if not matching:
            return frozenset()
        fewest = min(item.parameters for item in matching)
        return frozenset().union(*(i.methods for i in matching if i.parameters == fewest))


def documented_paths(app: Any) -> DocumentedPaths:
    """The app's documented paths, read once from its OpenAPI document."""
    paths: DocumentedPaths | None = getattr(app.state, "documented_paths", None)
    if paths is None:
        paths = app.state.documented_paths = DocumentedPaths(app.openapi())
    return paths


def allowed_methods(request: Request) -> str:
    """The Allow header of a 405: every method the document gives the request's path (RFC 9110)."""
    return ", ".join(sorted(documented_paths(request.app).methods(request.url.path)))


class ConcretePathsFirst:
    """Answer 405 for a method a concrete path does not have, rather than let a templated route
    that also matches the path take the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            allowed = documented_paths(scope["app"]).shadowed.get(scope["path"])
            if allowed is not None and scope["method"] not in allowed:
                response = problem_response(
                    Request(scope), 405, headers={"Allow": ", ".join(sorted(allowed))}
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
