"""What the end-to-end measurement reads of the delivery service's store, on the store itself."""

from __future__ import annotations

from pathlib import Path

from delivery_service.store import CONTAINERS, DELIVERIES
from loadtests.bench.run import DeliveryCounts
from servicekit.stores.documents import SqliteDocumentStore


async def test_new_deliveries_and_the_first_still_requested(tmp_path: Path) -> None:
    path = tmp_path / "delivery.db"
    async with SqliteDocumentStore(f"sqlite:///{path}", CONTAINERS, timeout=5) as store:
        deliveries = store.container(DELIVERIES)
        await deliveries.create({"id": "old", "stage": "Completed"})
        counts = DeliveryCounts(path)
        before = counts.last_row()
        stored = {}
        for number, stage in enumerate(["Scheduled", "Requested", "Completed", "Requested"]):
            stored[number] = await deliveries.create({"id": f"new-{number}", "stage": stage})
        first = counts.first_requested(before + 1)
        assert first is not None
        await deliveries.replace({"id": "new-1", "stage": "Scheduled"}, etag=stored[1].etag)
        second = counts.first_requested(first)
        assert second is not None
        await deliveries.replace({"id": "new-3", "stage": "Scheduled"}, etag=stored[3].etag)

        assert counts.last_row() - before == 4
        assert second > first
        assert counts.first_requested(second) is None
        assert counts.stages(before) == {"Scheduled": 3, "Completed": 1}
        assert counts.stages() == {"Scheduled": 3, "Completed": 2}
