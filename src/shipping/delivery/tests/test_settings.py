"""The delivery service's settings: read from DELIVERY_* variables, and refused when inconsistent."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from delivery_service.settings import DeliverySettings


def test_settings_come_from_delivery_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVERY_SCHEDULER_SERVICE_URL", "http://scheduler:8080")
    monkeypatch.setenv("DELIVERY_SCHEDULING_BUDGET_SECONDS", "45")
    monkeypatch.setenv("SCHEDULER_STORE_URL", "sqlite:///not-ours.db")

    settings = DeliverySettings()

    assert settings.scheduler_service_url == "http://scheduler:8080"
    assert settings.scheduling_budget_seconds == 45
    assert settings.store_url.endswith("delivery.db")
    assert settings.max_weight_kg == 25


def test_a_lease_shorter_than_a_wait_and_a_call_is_refused() -> None:
    with pytest.raises(ValidationError, match="lease_seconds"):
        DeliverySettings(lease_seconds=5, retry_max_seconds=3, call_deadline_seconds=3)


def test_calls_to_a_neighbour_are_limited_to_the_concurrency_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DELIVERY_CALL_MAX_CONCURRENCY", "3")

    policy = DeliverySettings().call_policy()

    assert policy.max_concurrency == 3
    assert DeliverySettings.model_fields["call_max_concurrency"].default == 16
