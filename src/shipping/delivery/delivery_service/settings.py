"""The delivery service's settings: `DELIVERY_*` environment variables (see docs/delivery.md)."""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from servicekit.clients import CallPolicy
from servicekit.settings import ServiceSettings, data_dir_url


class DeliverySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DELIVERY_")

    service_name: ClassVar[str] = "delivery"

    store_url: str = Field(
        default_factory=lambda: data_dir_url("delivery.db"),
        description="sqlite:///path (default .data/delivery.db) or a Cosmos DB URL.",
    )
    package_service_url: str = Field(
        default="http://127.0.0.1:8082", description="The package service's base URL."
    )
    scheduler_service_url: str = Field(
        default="http://127.0.0.1:8083", description="The scheduler service's base URL."
    )
    max_weight_kg: float = Field(
        default=25.0,
        gt=0,
        description="The heaviest package accepted: the largest payload in the fleet.",
    )
    scheduling_budget_seconds: float = Field(
        default=120.0,
        gt=0,
        description="How long a request may wait for its package to be registered and a drone to "
        "become free before it fails.",
    )
    change_wait_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long a reschedule may wait for a drone for its new plan; a cancel or "
        "reschedule request waits this long (plus one call) for the scheduler's decision.",
    )
    lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long a replica may work on a delivery without writing a checkpoint "
        "before another replica's sweeper takes it over.",
    )
    sweep_interval_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often each replica looks for deliveries whose lease expired.",
    )
    sweep_batch_size: int = Field(
        default=50, gt=0, description="How many deliveries one sweep claims at most."
    )
    call_attempt_timeout_seconds: float = Field(
        default=2.0, gt=0, description="How long one attempt of a call to a neighbour may take."
    )
    call_deadline_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long one call to a neighbour may take, its retries included.",
    )
    call_max_concurrency: int = Field(
        default=16,
        gt=0,
        description="How many calls to one neighbour may be in flight at once; more wait for "
        "their turn within the call deadline. A neighbour sent more than it serves at once only "
        "answers later, past the attempt timeout, and the retries add to its load.",
    )
    max_active_workflows: int = Field(
        default=32,
        gt=0,
        description="How many deliveries one replica works on at once; the others wait their turn "
        "in the store. Intake stays fast under a burst, and the backlog is scheduled as fast as the "
        "neighbours allow (the queue-based load leveling pattern).",
    )
    intake_first_lag_seconds: float = Field(
        default=0.002,
        ge=0,
        description="While requests are being accepted and the event loop runs this much behind, "
        "no new workflow starts: a burst is accepted at the speed of intake alone and scheduled "
        "after it (0: workflows never wait for the intake).",
    )
    retry_initial_seconds: float = Field(
        default=0.5,
        gt=0,
        description="The workflow's first wait after a neighbour could not serve it; it doubles.",
    )
    retry_max_seconds: float = Field(
        default=10.0,
        gt=0,
        description="The workflow's longest wait between attempts (a longer Retry-After is "
        "shortened to it), which bounds how late a waiting delivery notices a cancel.",
    )
    live_location_timeout_seconds: float = Field(
        default=0.5,
        gt=0,
        description="How long a status request waits for the drone's live position before it "
        "answers with the last reported one.",
    )

    @model_validator(mode="after")
    def _lease_outlasts_a_step(self) -> Self:
        # A lease is renewed at every checkpoint and before every wait; it must outlast the longest
        # stretch between two renewals (a wait and then a call), or a live runner would lose it.
        longest_step = self.retry_max_seconds + self.call_deadline_seconds
        if self.lease_seconds <= longest_step:
            raise ValueError(
                f"lease_seconds ({self.lease_seconds:g}) must be longer than retry_max_seconds "
                f"+ call_deadline_seconds ({longest_step:g})"
            )
        return self

    def call_policy(self) -> CallPolicy:
        return CallPolicy(
            attempt_timeout=self.call_attempt_timeout_seconds,
            deadline=self.call_deadline_seconds,
            max_concurrency=self.call_max_concurrency,
        )
