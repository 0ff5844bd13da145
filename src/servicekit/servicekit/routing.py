"""Requests reach the resource the service's OpenAPI document says their path names.

OpenAPI matches a concrete path before a templated one: `/api/packages/summary` is the monthly
summary, not the package "summary". FastAPI tries routes in order and takes the first whose path
and method both match, so `PUT /api/packages/summary` would reach `PUT /api/packages/{id}` and
create a package that GET could never read. `ConcretePathsFirst` answers such requests 405 instead,
and `allowed_methods` gives every 405 the methods of the path as the document has them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from servicekit.problems import problem_response

_PARAMETER = re.compile(r"\\\{[^}/]+\\\}")
_METHODS = frozenset(("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"))


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
