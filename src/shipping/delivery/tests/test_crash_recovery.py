"""A replica killed mid-workflow: another process's sweeper resumes the delivery where it stopped."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from delivery_testkit import (
    FAST,
    FakePackageService,
    FakeScheduler,
    event_stages,
    eventually,
    reach_stage,
    request_delivery,
)

from servicekit.testing import ServiceProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def start_replica(
    tmp_path: Path,
    package_service: tuple[FakePackageService, str],
    scheduler_service: tuple[FakeScheduler, str],
) -> Iterator[Callable[[], ServiceProcess]]:
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(tmp_path),
        "DELIVERY_STORE_URL": f"sqlite:///{tmp_path}/delivery.db",
        "DELIVERY_PACKAGE_SERVICE_URL": package_service[1],
        "DELIVERY_SCHEDULER_SERVICE_URL": scheduler_service[1],
        **{f"DELIVERY_{name.upper()}": str(value) for name, value in FAST.items()},
    }
    started: list[ServiceProcess] = []

    def start() -> ServiceProcess:
        """The delivery service as its own uvicorn process, as it runs in a pod."""
        log = tmp_path / f"replica-{len(started) + 1}.log"
        started.append(
            ServiceProcess("delivery_service.app:app", env=env, cwd=tmp_path, log=log).wait_ready()
        )
        return started[-1]

    yield start
    for replica in started:
        replica.stop()


async def test_a_delivery_whose_replica_was_killed_is_resumed_without_duplicates(
    start_replica: Callable[[], ServiceProcess],
    packages: FakePackageService,
    scheduler: FakeScheduler,
) -> None:
    scheduler.answer_next("PUT", 503, times=1000, retry_after="1")  # hold it after step 2
    first = start_replica()
    async with httpx.AsyncClient(base_url=first.url) as client:
        delivery_id = await request_delivery(client)
        await eventually(lambda: scheduler.calls["PUT"] >= 1, what="a drone requested")
    assert len(packages.packages) == 1, "the package was registered before the crash"

    first.kill()
    scheduler.answer_normally()
    second = start_replica()

    async with httpx.AsyncClient(base_url=second.url) as client:
        scheduled = await reach_stage(client, delivery_id, "Scheduled")
        stages = await event_stages(client, delivery_id)

    assert packages.calls["PUT"] == 1, "the package is not registered again"
    assert list(packages.packages) == [scheduled["packageId"]]
    assert scheduler.drones_held == 1
    assert scheduled["droneId"] == "drone-1"
    assert stages == ["Created", "Scheduled"]


async def test_a_replica_stopping_hands_its_deliveries_over_at_once(
    start_replica: Callable[[], ServiceProcess],
    packages: FakePackageService,
    scheduler: FakeScheduler,
) -> None:
    scheduler.answer_next("PUT", 503, times=1000, retry_after="1")
    first = start_replica()
    async with httpx.AsyncClient(base_url=first.url) as client:
        delivery_id = await request_delivery(client)
        await eventually(lambda: scheduler.calls["PUT"] >= 1, what="a drone requested")
    second = start_replica()

    first.stop()  # SIGTERM: a rolling update, not a crash
    stopped_at = time.monotonic()
    scheduler.answer_normally()

    async with httpx.AsyncClient(base_url=second.url) as client:
        await reach_stage(client, delivery_id, "Scheduled")
    assert time.monotonic() - stopped_at < FAST["lease_seconds"], "resumed before the lease ran out"
    assert packages.calls["PUT"] == 1
    assert scheduler.drones_held == 1
