"""The scheduler's containers in the document store, and typed access to them.

Only the `Container` protocol is used (get, create, replace and delete with an ETag, query), so the
same code runs on the embedded SQLite backend and on Cosmos DB. Every change of a document that
others may change at the same time is an optimistic read-modify-write (`Repository.change`): it
wins only if nobody wrote the document since it was read, and otherwise decides again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from scheduler_service.records import (
    AssignmentRecord,
    DroneRecord,
    FlightRecord,
    NotificationRecord,
    Record,
)
from scheduler_service.settings import SchedulerSettings
from servicekit.stores import service_document_store
from servicekit.stores.documents import Container, ContainerSpec, Filter
from servicekit.stores.errors import (
    DocumentExistsError,
    PreconditionFailedError,
    StoreUnavailableError,
)

DRONES = ContainerSpec(
    "drones", partition_key="id", indexed=("deliveryId", "nextMilestoneAt", "claimedAt")
)
ASSIGNMENTS = ContainerSpec("assignments", partition_key="deliveryId")
NOTIFICATIONS = ContainerSpec(
    "notifications", partition_key="deliveryId", indexed=("orderKey", "nextAttemptAt")
)
UTILIZATION = ContainerSpec("utilization", partition_key="ownerId", indexed=("year", "month"))
CONTAINERS = (DRONES, ASSIGNMENTS, NOTIFICATIONS, UTILIZATION)

R = TypeVar("R", bound=Record)

# How often a read-modify-write decides again after losing to another writer before it gives up
# (503): far more than two replicas racing for one document ever need.
CHANGE_ATTEMPTS = 32


class ContentionError(StoreUnavailableError):
    """A document kept changing under a read-modify-write; the request may be retried."""


@dataclass(frozen=True)
class Versioned(Generic[R]):
    """A record and the ETag of the version it was read from."""

    record: R
    etag: str


class Repository(Generic[R]):
    """One container, its documents as records of one type."""

    def __init__(
        self, container: Container, record_type: type[R], *, remember: bool = False
    ) -> None:
        """`remember`: keep the last record parsed of each document, and reuse it while the
        document's ETag is unchanged (for a small container read over and over, the fleet)."""
        self._container = container
        self._type = record_type
        self._remembered: dict[str, Versioned[R]] | None = {} if remember else None

    @property
    def name(self) -> str:
        return self._container.spec.name

    async def get(self, id: str, partition: str) -> Versioned[R] | None:
        found = await self._container.get(id, partition)
        return None if found is None else self._versioned(found.body, found.etag)

    async def create(self, record: R) -> bool:
        """Add the record; answer False when its id was taken (an idempotent write's repeat)."""
        return await self.add(record.as_document())

    async def add(self, document: dict[str, Any]) -> bool:
        """Add a document as it is: one that this service made from a record (a pending write,
        see `drones`); answer False when its id was taken."""
        try:
            await self._container.create(document)
        except DocumentExistsError:
            return False
        return True

    async def replace(self, current: Versioned[R], record: R) -> Versioned[R]:
        """Write the record if the document is still `current`; raise PreconditionFailedError if not."""
        written = await self._container.replace(record.as_document(), etag=current.etag)
        return self._remember(Versioned(record, written.etag))

    async def delete(self, id: str, partition: str, *, etag: str | None = None) -> bool:
        return await self._container.delete(id, partition, etag=etag)

    async def query(
        self,
        *where: Filter,
        partition: str | None = None,
        order_by: str | None = None,
        limit: int | None = None,
    ) -> list[Versioned[R]]:
        found = await self._container.query(
            *where, partition=partition, order_by=order_by, limit=limit
        )
        return [self._versioned(document.body, document.etag) for document in found]

    async def count(self, *where: Filter) -> int:
        return await self._container.count(*where)

    async def ids(self, *where: Filter) -> list[str]:
        return await self._container.ids(*where)

    async def change(
        self,
        id: str,
        partition: str,
        decide: Callable[[R], R | None],
        *,
        read: Versioned[R] | None = None,
    ) -> R | None:
        """Read the document, let `decide` say what it becomes (None: leave it), write that back
        unless someone wrote first, and then decide again on what they wrote.

        Answers the record as it now stands, or None when there is no such document. `decide` may
        raise to refuse the change; it is called again after every lost race. `read`: the version
        the caller has just read, to decide on first instead of reading it again.
        """
        for _ in range(CHANGE_ATTEMPTS):
            current = read if read is not None else await self.get(id, partition)
            read = None
            if current is None:
                return None
            changed = decide(current.record)
            if changed is None:
                return current.record
            try:
                await self.replace(current, changed)
            except PreconditionFailedError:
                continue
            return changed
        raise ContentionError(f"{self.name}/{id} kept changing; try again")

    def parse(self, document: dict[str, Any]) -> R:
        return self._type.model_validate(document)

    def _versioned(self, document: dict[str, Any], etag: str) -> Versioned[R]:
        if self._remembered is not None:
            known = self._remembered.get(str(document.get("id")))
            if known is not None and known.etag == etag:
                return known
        return self._remember(Versioned(self.parse(document), etag))

    def _remember(self, versioned: Versioned[R]) -> Versioned[R]:
        # Records are never changed in place (every change is a model_copy), so sharing is safe.
        if self._remembered is not None:
            self._remembered[str(getattr(versioned.record, "id", ""))] = versioned
        return versioned


@dataclass(frozen=True)
class SchedulerStore:
    drones: Repository[DroneRecord]
    assignments: Repository[AssignmentRecord]
    notifications: Repository[NotificationRecord]
    utilization: Repository[FlightRecord]

    async def assigned_plan_id(self, delivery_id: str) -> str | None:
        """The plan the delivery's assignment holds: a claim for any other plan is not wanted."""
        found = await self.assignments.get(delivery_id, delivery_id)
        return None if found is None else found.record.plan.plan_id

    async def create_document(self, container: str, document: dict[str, Any]) -> bool:
        """Add a document to the container it names (see `PendingWrite`); False if it was there."""
        repositories: dict[str, Repository[Any]] = {
            repository.name: repository
            for repository in (self.drones, self.assignments, self.notifications, self.utilization)
        }
        return await repositories[container].add(document)


@asynccontextmanager
async def open_scheduler_store(settings: SchedulerSettings) -> AsyncIterator[SchedulerStore]:
    documents = service_document_store(settings, CONTAINERS)
    await documents.start()
    try:
        yield SchedulerStore(
            drones=Repository(documents.container(DRONES.name), DroneRecord, remember=True),
            assignments=Repository(documents.container(ASSIGNMENTS.name), AssignmentRecord),
            notifications=Repository(documents.container(NOTIFICATIONS.name), NotificationRecord),
            utilization=Repository(documents.container(UTILIZATION.name), FlightRecord),
        )
    finally:
        await documents.stop()
