"""Intake first: new workflows wait while accepting requests keeps the event loop behind."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint

from delivery_service import priority
from delivery_service.leases import Leases
from delivery_service.priority import IntakeFirst
from delivery_service.runner import Runner

THRESHOLD = 0.002


@pytest.fixture
async def intake_first() -> AsyncIterator[IntakeFirst]:
    gate = IntakeFirst(lag_threshold=THRESHOLD)
    gate.start()
    yield gate
    await gate.stop()


async def busy_loop(seconds: float, *, accepting: IntakeFirst | None) -> None:
    """Keep the event loop behind (each turn blocks it 5 ms), accepting a request a turn or not."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        time.sleep(0.005)  # noqa: ASYNC251  # blocking the loop is the point
        if accepting is not None:
            accepting.accepted()
        await asyncio.sleep(0)


async def starts_within(gate: IntakeFirst, seconds: float) -> bool:
    try:
        await asyncio.wait_for(gate.wait(), seconds)
    except TimeoutError:
        return False
    return True


async def test_workflows_wait_while_requests_keep_the_loop_behind(
    intake_first: IntakeFirst,
) -> None:
    burst = asyncio.create_task(busy_loop(0.3, accepting=intake_first))
    await asyncio.sleep(0.1)

    during = await starts_within(intake_first, 0.05)
    await burst
    after = await starts_within(intake_first, 0.1)

    assert intake_first.yielding is False
    assert (during, after) == (False, True)


async def test_a_loop_behind_without_requests_does_not_stop_workflows(
    intake_first: IntakeFirst,
) -> None:
    # Workflows alone keeping the loop busy: nobody is waiting for an answer.
    busy = asyncio.create_task(busy_loop(0.2, accepting=None))
    await asyncio.sleep(0.05)

    assert await starts_within(intake_first, 0.05)
    await busy


async def test_requests_on_a_loop_that_keeps_up_do_not_stop_workflows(
    intake_first: IntakeFirst,
) -> None:
    for _ in range(20):
        intake_first.accepted()
        await asyncio.sleep(0.005)

    assert intake_first.yielding is False
    assert await starts_within(intake_first, 0.01)


async def test_a_threshold_of_zero_turns_the_priority_off() -> None:
    gate = IntakeFirst(lag_threshold=0)
    gate.start()
    try:
        await busy_loop(0.1, accepting=gate)
        assert await starts_within(gate, 0.01)
    finally:
        await gate.stop()


class RecordingWorkflow:
    """Notes when each delivery's work started."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}

    async def run(self, delivery_id: str, wake: asyncio.Event) -> None:
        self.started[delivery_id] = time.monotonic()


async def test_the_runner_starts_the_backlog_once_the_burst_is_over(
    intake_first: IntakeFirst,
) -> None:
    workflow = RecordingWorkflow()
    runner = Runner(
        workflow,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]  # the store is used only to hand leases back on stop
        Leases("here", 30),
        max_active=4,
        intake_first=intake_first,
    )
    burst = asyncio.create_task(busy_loop(0.3, accepting=intake_first))
    await asyncio.sleep(0.1)
    for number in range(10):
        runner.kick(f"d{number}")
    await burst
    burst_over = time.monotonic()
    await asyncio.sleep(0.1)

    assert len(workflow.started) == 10
    assert min(workflow.started.values()) >= burst_over


async def test_the_time_workflows_waited_is_counted(
    intake_first: IntakeFirst, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = InMemoryMetricReader()
    counter = MeterProvider(metric_readers=[reader]).get_meter("test").create_counter("yielded")
    monkeypatch.setattr(priority, "_yielded", counter)

    await busy_loop(0.3, accepting=intake_first)
    await asyncio.sleep(0.05)

    data = reader.get_metrics_data()
    assert data is not None
    (metric,) = data.resource_metrics[0].scope_metrics[0].metrics
    (point,) = metric.data.data_points
    assert isinstance(point, NumberDataPoint)
    assert 0.1 < point.value < 0.4, "about the burst's length, less its first tick"
