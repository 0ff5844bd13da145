"""Intake first: while accepting delivery requests keeps a replica busy, it starts no new workflow.

An accepted request is safe in the store, so its scheduling can wait; a client waiting for its 202
cannot. Intake and workflows share one event loop: a request's answer waits behind every workflow
step that became ready before it. When the loop falls behind (a timer fires later than it was due
by more than `lag_threshold`) while requests are being accepted, the replica is saturated by them,
and new workflows wait until the loop keeps up again or the requests stop. Workflows under way
finish their step; the backlog is then scheduled at full speed. A burst is therefore accepted at the
speed of intake alone, and a replica whose intake alone saturates it, hour after hour, needs more
replicas (the chart's autoscaler adds them on CPU), not a share of its intake given to scheduling.
"""

from __future__ import annotations

import asyncio
import contextlib

from opentelemetry import metrics

# Rising all the time, not in bursts: the replica's intake alone keeps it busy; add replicas.
_yielded = metrics.get_meter(__name__).create_counter(
    "delivery.workflows.yielded",
    unit="s",
    description="Time during which new workflows waited because accepting requests saturated "
    "the replica",
)


class IntakeFirst:
    def __init__(self, *, lag_threshold: float, tick: float = 0.01) -> None:
        self._lag_threshold = lag_threshold
        self._tick = tick
        self._accepted = 0
        self._clear = asyncio.Event()
        self._clear.set()
        self._probe: asyncio.Task[None] | None = None

    @property
    def yielding(self) -> bool:
        """New workflows are waiting for the intake."""
        return not self._clear.is_set()

    def accepted(self) -> None:
        """The intake accepted a request."""
        self._accepted += 1

    async def wait(self) -> None:
        """Until new workflows may start."""
        await self._clear.wait()

    def start(self) -> None:
        if self._lag_threshold > 0 and self._probe is None:
            self._probe = asyncio.create_task(self._watch(), name="intake first")

    async def stop(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None
        self._clear.set()

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started, accepted = loop.time(), self._accepted
            await asyncio.sleep(self._tick)
            now = loop.time()
            if self.yielding:
                _yielded.add(now - started)
            behind = now - started - self._tick > self._lag_threshold
            if behind and self._accepted != accepted:
                self._clear.clear()
            else:
                self._clear.set()
