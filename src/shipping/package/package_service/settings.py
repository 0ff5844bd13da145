"""The package service's settings: `PACKAGE_*` environment variables (see docs/configuration.md)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from servicekit.settings import ServiceSettings, data_dir_url


class PackageSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PACKAGE_")

    service_name: ClassVar[str] = "package"

    store_url: str = Field(
        default_factory=lambda: data_dir_url("package.db"),
        description="sqlite:///path (default .data/package.db) or odbc:<connection string>.",
    )
    max_weight_kg: float = Field(
        default=25.0,
        gt=0,
        description="The heaviest package accepted: the largest payload in the fleet.",
    )
