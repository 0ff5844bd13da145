"""The `scheduler.drones` gauge: how many drones are free, assigned (on the ground, waiting for
their departure) and flying. Exported metrics are read on the exporter's thread, which cannot wait
on the store, so the counts are taken every few seconds by the background loop and kept here."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from scheduler_service.records import DroneRecord
from scheduler_service.store import Repository
from servicekit.stores.documents import Filter

# By the drone's stored state: a flight (or none) and the index of its next stop (0: not departed).
STATES: dict[str, tuple[Filter, ...]] = {
    "free": (("flight", "=", None),),
    "assigned": (("flight", "!=", None), ("nextStop", "=", 0)),
    "flying": (("nextStop", ">=", 1),),
}


class FleetGauge:
    def __init__(self, drones: Repository[DroneRecord]) -> None:
        self._drones = drones
        self._counts: dict[str, int] = {}
        metrics.get_meter(__name__).create_observable_gauge(
            "scheduler.drones",
            callbacks=[self._observe],
            unit="{drone}",
            description="Drones by state: free, assigned (waiting to depart), flying",
        )

    async def refresh(self) -> None:
        self._counts = {state: await self._drones.count(*where) for state, where in STATES.items()}

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(count, {"drone.state": state}) for state, count in self._counts.items()]
