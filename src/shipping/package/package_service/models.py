"""What comes in (`PackageIn`, `PackagePatch`), what goes out (`Package`, `PackageSummary`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, model_validator

from servicekit.models import ApiModel, CaseInsensitiveEnum, Identifier, PlainText


class PackageSize(CaseInsensitiveEnum):
    SMALL = "Small"
    MEDIUM = "Medium"
    LARGE = "Large"


Weight = Annotated[float, Field(gt=0, allow_inf_nan=False, description="Kilograms.")]
Tag = Annotated[PlainText, Field(min_length=1, max_length=64)]


class PackageIn(ApiModel):
    """The body of `PUT /api/packages/{id}`: the whole package."""

    size: PackageSize
    weight: Weight
    tag: Tag
    owner_id: Identifier | None = None


class PackagePatch(ApiModel):
    """The body of `PATCH /api/packages/{id}`: only the fields to change."""

    size: PackageSize | None = None
    weight: Weight | None = None
    tag: Tag | None = None
    owner_id: Identifier | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_explicit_nulls(cls, data: Any) -> Any:
        # Leaving a field out keeps it; sending null would erase a value the package needs.
        if isinstance(data, dict):
            nulls = sorted(k for k, v in data.items() if v is None and k != "ownerId")
            if nulls:
                raise ValueError(f"cannot be null: {', '.join(nulls)}")
        return data

    def changes(self) -> dict[str, Any]:
        return self.model_dump(mode="json", include=self.model_fields_set, by_alias=False)


class Package(ApiModel):
    id: str
    owner_id: str | None
    size: PackageSize
    weight: float
    tag: str
    created_at: datetime
    updated_at: datetime


class PackageSummary(ApiModel):
    owner_id: str
    year: int
    month: int
    count: int
    total_weight: float = Field(description="Kilograms, summed over the month's packages.")
