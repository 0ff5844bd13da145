"""The README stays true: every setting a service reads is listed there with its default, and every
document it links to exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from delivery_service.settings import DeliverySettings
from package_service.settings import PackageSettings
from scheduler_service.settings import SchedulerSettings
from servicekit.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
SERVICES: list[type[ServiceSettings]] = [DeliverySettings, PackageSettings, SchedulerSettings]


def readme_row(name: str) -> str:
    rows = [line for line in README.splitlines() if line.startswith("|") and f"`{name}`" in line]
    assert rows, f"{name} is not in the README's configuration table"
    return rows[0]


def shown_default(settings: type[BaseSettings], field: str) -> str:
    info = settings.model_fields[field]
    if info.default_factory is not None:
        return "sqlite:///.data/"
    return "none" if info.default is None else str(info.default)


@pytest.mark.parametrize("settings", SERVICES, ids=lambda s: s.service_name)
def test_every_setting_is_in_the_readme_with_its_default(settings: type[ServiceSettings]) -> None:
    prefix = str(settings.model_config.get("env_prefix", ""))
    for field in settings.model_fields:
        common = field in ServiceSettings.model_fields
        name = f"<P>{field.upper()}" if common else f"{prefix}{field.upper()}"
        row = readme_row(name)
        assert shown_default(settings, field) in row, f"{name}: the default is not in {row!r}"


def test_every_linked_document_exists() -> None:
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), f"the README links to {target}, which does not exist"
