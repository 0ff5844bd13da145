"""Settings every service shares, read from the environment and from mounted secret files.

Each service subclasses `ServiceSettings` and gives it its own prefix (`PACKAGE_`, `DELIVERY_`, ...), so
`PACKAGE_STORE_URL` and `DELIVERY_STORE_URL` never collide when the services run side by side on a laptop.
In the cluster the Key Vault CSI driver mounts each secret as a file named like the variable it replaces
(`PACKAGE_STORE_URL`), which pydantic-settings reads from `SECRETS_DIR`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

from servicekit.stores.urls import insecure_store_reasons, redact_store_url

DEVELOPMENT = "development"
DEFAULT_SECRETS_DIR = "/mnt/secrets-store"


class InsecureSettingsError(ValueError):
    """A deployed service was started with a setting that is only safe on a developer's laptop."""


class ServiceSettings(BaseSettings):
    """The settings of every service. Subclasses set `env_prefix` and add their own fields."""

    model_config = SettingsConfigDict(extra="ignore", validate_default=True)

    service_name: ClassVar[str] = "service"

    environment: str = Field(
        default=DEVELOPMENT,
        description="`development` on a laptop; anything else is a deployed environment "
        "(dev, qa, staging, prod) where insecure defaults are refused.",
    )
    store_url: str = Field(
        description="Where the service keeps its data (see docs/configuration.md)."
    )
    cosmos_key: SecretStr | None = Field(
        default=None,
        description="The Azure Cosmos DB account key, for a cosmos:// store URL. Best left unset in "
        "Azure: the service then signs in with its Microsoft Entra identity (workload identity).",
    )
    store_timeout_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How long one store operation may take, retries included, before the "
        "request is answered 503 instead of hanging.",
    )
    log_level: str = "INFO"
    drain_seconds: float = Field(
        default=0.0,
        ge=0,
        description="After SIGTERM, how long to keep serving while readiness answers 503, so that "
        "Kubernetes takes the pod out of its Service before connections close.",
    )

    @property
    def is_development(self) -> bool:
        return self.environment == DEVELOPMENT

    def insecure_reasons(self) -> list[str]:
        """What makes these settings unsafe outside development. Subclasses extend the list."""
        key = self.cosmos_key.get_secret_value() if self.cosmos_key else None
        return insecure_store_reasons(self.store_url, setting=self.env_name("store_url"), key=key)

    def env_name(self, field: str) -> str:
        return f"{self.model_config.get('env_prefix', '')}{field}".upper()

    @model_validator(mode="after")
    def _refuse_insecure_defaults(self) -> ServiceSettings:
        if not self.is_development and (reasons := self.insecure_reasons()):
            raise InsecureSettingsError(
                f"refusing to start in environment {self.environment!r}: " + "; ".join(reasons)
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The secrets directory is looked up when the settings are built, not when the class is
        # defined, and only if it exists: on a laptop there is none, and that is not worth a warning.
        secrets_dir = Path(os.environ.get("SECRETS_DIR", DEFAULT_SECRETS_DIR))
        secrets: tuple[PydanticBaseSettingsSource, ...] = ()
        if secrets_dir.is_dir():
            secrets = (SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir),)
        return (init_settings, env_settings, *secrets)


def data_dir_url(file_name: str) -> str:
    """The embedded default store: a SQLite file under `./.data/` (or `$DATA_DIR`)."""
    data_dir = Path(os.environ.get("DATA_DIR", ".data"))
    return f"sqlite:///{data_dir / file_name}"


def settings_summary(settings: ServiceSettings) -> dict[str, Any]:
    """The settings as they may appear in a log line: no credentials, secrets masked."""
    summary = settings.model_dump(mode="json")
    summary["store_url"] = redact_store_url(settings.store_url)
    return {f"settings.{name}": value for name, value in summary.items()}
