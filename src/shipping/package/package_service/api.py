"""The package service's HTTP API (internal: only the delivery service calls it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from package_service.models import Package, PackageIn, PackagePatch, PackageSummary
from package_service.settings import PackageSettings
from package_service.store import PackageRecord, PackageRepository
from servicekit.models import IDENTIFIER_PATTERN
from servicekit.problems import Problem, invalid_field, problem_responses


def _packages(request: Request) -> PackageRepository:
    repository: PackageRepository = request.app.state.packages
    return repository


def _settings(request: Request) -> PackageSettings:
    settings: PackageSettings = request.app.state.settings
    return settings


Packages = Annotated[PackageRepository, Depends(_packages)]
Settings = Annotated[PackageSettings, Depends(_settings)]
PackageId = Annotated[str, Path(pattern=IDENTIFIER_PATTERN, description="The package's id.")]

router = APIRouter(prefix="/api/packages", tags=["packages"])


@router.get("/summary", response_model=PackageSummary)
async def month_summary(
    packages: Packages,
    owner_id: Annotated[str, Query(alias="ownerId", pattern=IDENTIFIER_PATTERN)],
    year: Annotated[int, Query(ge=1, le=9998)],
    month: Annotated[int, Query(ge=1, le=12)],
) -> PackageSummary:
    """How many packages an owner registered in a month, and their total weight."""
    totals = await packages.month_totals(owner_id, year, month)
    return PackageSummary(
        owner_id=owner_id,
        year=year,
        month=month,
        count=totals.count,
        total_weight=totals.total_weight,
    )


@router.put(
    "/{id}",
    status_code=status.HTTP_201_CREATED,
    response_model=Package,
    responses={204: {"description": "An existing package was replaced"}},
)
async def put_package(
    id: PackageId, body: PackageIn, packages: Packages, settings: Settings, response: Response
) -> Package | Response:
    """Create the package (201) or replace it whole (204)."""
    _check_weight(body.weight, settings)
    record, created = await packages.put(id, body.model_dump(mode="json", by_alias=False))
    if not created:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    response.headers["Location"] = f"/api/packages/{id}"
    return _package(record)


@router.get("/{id}", response_model=Package, responses=problem_responses(404))
async def get_package(id: PackageId, packages: Packages) -> Package:
    return _package(await packages.get(id))


@router.patch("/{id}", response_model=Package, responses=problem_responses(404))
async def patch_package(
    id: PackageId, body: PackagePatch, packages: Packages, settings: Settings
) -> Package:
    """Change only the fields sent."""
    if body.weight is not None:
        _check_weight(body.weight, settings)
    return _package(await packages.patch(id, body.changes()))


@router.delete("/{id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_package(id: PackageId, packages: Packages) -> None:
    """Delete the package; deleting one that is already gone succeeds too (compensation relies on it)."""
    await packages.delete(id)


def _check_weight(weight: float, settings: PackageSettings) -> None:
    if weight > settings.max_weight_kg:
        raise invalid_field("weight", f"must be at most {settings.max_weight_kg:g} kg")


def _package(record: PackageRecord | None) -> Package:
    if record is None:
        raise Problem(404, "No package with that id.", kind="package-not-found")
    return Package.model_validate(record, from_attributes=True)
