"""The scheduler's settings: `SCHEDULER_*` environment variables (see docs/scheduler.md)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from servicekit.settings import ServiceSettings, data_dir_url


class SchedulerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SCHEDULER_")

    service_name: ClassVar[str] = "scheduler"

    store_url: str = Field(
        default_factory=lambda: data_dir_url("scheduler.db"),
        description="sqlite:///path (default .data/scheduler.db) or a Cosmos DB URL.",
    )
    delivery_service_url: str = Field(
        default="http://127.0.0.1:8081",
        description="Where the delivery service listens; it receives the tracking events.",
    )
    sim_speedup: float = Field(
        default=60.0,
        gt=0,
        le=1_000_000,
        description="How much faster than real time the drones fly: at 60 a flight of one "
        "simulated hour takes one real minute.",
    )
    fleet_size: int = Field(
        default=20,
        ge=1,
        le=999,
        description="How many drones the fleet has; seeded at first start, never shrunk.",
    )
    expedited_reserve: float = Field(
        default=0.1,
        ge=0,
        lt=1,
        description="The share of the fleet that non-expedited deliveries leave free, so that "
        "expedited ones find a drone when drones are scarce.",
    )
    tick_seconds: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="How often each replica looks for flights that passed a milestone and for "
        "notifications to send.",
    )
    claim_grace_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How old a drone's claim must be before a claim that no assignment "
        "refers to is undone (a request that crashed half way).",
    )
    notification_max_backoff_seconds: float = Field(
        default=15.0,
        gt=0,
        description="The longest wait between two attempts to deliver one notification.",
    )
