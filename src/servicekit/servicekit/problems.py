"""Every error a service answers is `application/problem+json` (RFC 9457).

Routes raise `Problem` for what they decide themselves (404, 409, ...). Everything else is turned into a
problem here: validation errors list the fields at fault, malformed JSON is a 400, an unknown route or
method keeps its 404 or 405, a store that does not answer is a 503 with `Retry-After`. An unexpected
exception is answered by the request middleware (`servicekit.requests`), which owns the request id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from servicekit.context import current_request_id
from servicekit.stores.errors import StoreUnavailableError

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://dronedelivery.fabrikam.com/problems/"


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the field at fault, e.g. `packageInfo.weight`.")
    location: str = Field(alias="in", description="`body`, `query`, `path` or `header`.")
    message: str

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class ProblemDetails(BaseModel):
    """The body of every error response (RFC 9457)."""

    type: str = Field(default="about:blank", description="Identifies the kind of problem.")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(default=None, description="The path the problem happened on.")
    request_id: str | None = Field(default=None, alias="requestId")
    errors: list[FieldError] | None = Field(default=None, description="For validation problems.")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class Problem(Exception):  # noqa: N818 - it is the answer, not an error of ours
    """Raise to answer with a problem: `raise Problem(404, "no package 42")`."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        title: str | None = None,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title or HTTPStatus(status).phrase)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.type = f"{PROBLEM_TYPE_BASE}{kind}" if kind else "about:blank"
        self.headers = headers or {}


def problem_response(
    request: Request | None,
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    type: str = "about:blank",
    errors: Sequence[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ProblemDetails(
        type=type,
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path if request is not None else None,
        request_id=current_request_id(),
        errors=list(errors) if errors is not None else None,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_JSON,
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _on_problem)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _on_http_exception)  # type: ignore[arg-type]
    app.add_exception_handler(StoreUnavailableError, _on_store_unavailable)  # type: ignore[arg-type]


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The problems a route can answer, for `responses=` on a route or router.

    Only the descriptions are given here; `document_problems` gives every error response of the
    OpenAPI document the problem+json schema, in one place.
    """
    return {status: {"description": HTTPStatus(status).phrase} for status in statuses}


# Every route can answer these: a failure nobody planned for, and a store that does not answer.
COMMON_PROBLEMS = (500, 503)


def document_problems(openapi: dict[str, Any]) -> dict[str, Any]:
    """Make every 4xx/5xx response of an OpenAPI document problem+json, and list the common ones."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    schemas["ProblemDetails"] = ProblemDetails.model_json_schema(
        by_alias=True, ref_template="#/components/schemas/{model}"
    )
    schemas.update(schemas["ProblemDetails"].pop("$defs", {}))
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}
    for path_item in openapi.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            statuses = list(COMMON_PROBLEMS)
            if "requestBody" in operation:
                statuses.append(400)  # malformed JSON
            # 422 (invalid fields) FastAPI documents itself, exactly where it validates the input.
            for status in statuses:
                responses.setdefault(str(status), {"description": HTTPStatus(status).phrase})
            for status, response in responses.items():
                if status[0] in "45":
                    response["content"] = content
    return openapi


async def _on_problem(request: Request, exc: Problem) -> JSONResponse:
    return problem_response(
        request, exc.status, title=exc.title, detail=exc.detail, type=exc.type, headers=exc.headers
    )


async def _on_http_exception(request: Request, exc: HTTPException) -> JSONResponse:
    phrase = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if exc.detail and exc.detail != phrase else None
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Imported here: routing answers its own 405s with this module's problems.
        from servicekit.routing import allowed_methods

        headers["Allow"] = allowed_methods(request)
    return problem_response(request, exc.status_code, detail=detail, headers=headers)


async def _on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    malformed = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if malformed is not None:
        reason = (malformed.get("ctx") or {}).get("error", "")
        return problem_response(
            request,
            400,
            title="Malformed JSON",
            detail=f"The request body is not valid JSON: {reason}".rstrip(": "),
            type=f"{PROBLEM_TYPE_BASE}malformed-json",
        )
    field_errors = list(_field_errors(errors))
    names = ", ".join(dict.fromkeys(e.field for e in field_errors))
    return problem_response(
        request,
        422,
        title="Validation failed",
        detail=f"Invalid {names}." if names else "The request is invalid.",
        type=f"{PROBLEM_TYPE_BASE}validation-error",
        errors=field_errors,
    )


async def _on_store_unavailable(request: Request, exc: StoreUnavailableError) -> JSONResponse:
    return problem_response(
        request,
        503,
        title="Store unavailable",
        detail="The service's database is not answering; retry shortly.",
        type=f"{PROBLEM_TYPE_BASE}store-unavailable",
        headers={"Retry-After": str(exc.retry_after_seconds)},
    )


def _field_errors(errors: Iterable[dict[str, Any]]) -> Iterable[FieldError]:
    for error in errors:
        location, *path = error.get("loc") or ("body",)
        # pydantic adds the validator's name to the path of union and tagged members; drop it.
        field = ".".join(str(p) for p in path if not _is_validator_name(p)) or str(location)
        yield FieldError(field=field, location=str(location), message=str(error.get("msg", "")))


def _is_validator_name(part: object) -> bool:
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def invalid_field(field: str, message: str, *, location: str = "body") -> RequestValidationError:
    """A validation error found by the route rather than the model (e.g. a limit from settings)."""
    return RequestValidationError(
        [{"loc": (location, *field.split(".")), "msg": message, "type": "value_error"}]
    )
