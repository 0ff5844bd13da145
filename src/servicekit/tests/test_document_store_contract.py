"""The document store contract: what every backend (SQLite, Cosmos DB) must do the same way."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from servicekit.stores.documents import ContainerSpec, DocumentStore, SqliteDocumentStore
from servicekit.stores.errors import DocumentExistsError, PreconditionFailedError


def drone(
    id: str, status: str = "Free", payload: float = 5.0, **extra: object
) -> dict[str, object]:
    return {"id": id, "status": status, "payload": payload, **extra}


async def test_create_then_get(document_store: DocumentStore) -> None:
    drones = document_store.container("drones")
    created = await drones.create(drone("d1", base={"lat": 47.6}))

    read = await drones.get("d1", "d1")

    assert read is not None
    assert read.body == {"id": "d1", "status": "Free", "payload": 5.0, "base": {"lat": 47.6}}
    assert read.etag == created.etag


async def test_get_of_a_missing_document_is_none(document_store: DocumentStore) -> None:
    assert await document_store.container("drones").get("nope", "nope") is None


async def test_create_refuses_an_existing_id(document_store: DocumentStore) -> None:
    drones = document_store.container("drones")
    await drones.create(drone("d1"))

    with pytest.raises(DocumentExistsError):
        await drones.create(drone("d1", payload=9.0))
    assert (await drones.get("d1", "d1")).body["payload"] == 5.0  # type: ignore[union-attr]


async def test_ids_are_unique_per_partition_only(document_store: DocumentStore) -> None:
    flights = document_store.container("flights")
    await flights.create({"id": "f1", "ownerId": "alice", "miles": 1})
    await flights.create({"id": "f1", "ownerId": "bob", "miles": 2})

    assert (await flights.get("f1", "alice")).body["miles"] == 1  # type: ignore[union-attr]
    assert (await flights.get("f1", "bob")).body["miles"] == 2  # type: ignore[union-attr]


async def test_replace_with_the_current_etag_succeeds_and_changes_it(
    document_store: DocumentStore,
) -> None:
    drones = document_store.container("drones")
    created = await drones.create(drone("d1"))

    replaced = await drones.replace(drone("d1", status="Assigned"), etag=created.etag)

    assert replaced.etag != created.etag
    assert (await drones.get("d1", "d1")).body["status"] == "Assigned"  # type: ignore[union-attr]


async def test_replace_with_a_stale_etag_fails(document_store: DocumentStore) -> None:
    drones = document_store.container("drones")
    created = await drones.create(drone("d1"))
    await drones.replace(drone("d1", status="Assigned"), etag=created.etag)

    with pytest.raises(PreconditionFailedError):
        await drones.replace(drone("d1", status="Returning"), etag=created.etag)
    assert (await drones.get("d1", "d1")).body["status"] == "Assigned"  # type: ignore[union-attr]


async def test_replace_of_a_deleted_document_fails(document_store: DocumentStore) -> None:
    drones = document_store.container("drones")
    created = await drones.create(drone("d1"))
    await drones.delete("d1", "d1")

    with pytest.raises(PreconditionFailedError):
        await drones.replace(drone("d1"), etag=created.etag)


async def test_only_one_of_many_concurrent_conditional_writers_wins(
    document_store: DocumentStore,
) -> None:
    drones = document_store.container("drones")
    created = await drones.create(drone("d1"))

    async def claim(delivery: int) -> bool:
        try:
            await drones.replace(
                drone("d1", status="Assigned", deliveryId=f"x{delivery}"), etag=created.etag
            )
            return True
        except PreconditionFailedError:
            return False

    wins = await asyncio.gather(*(claim(i) for i in range(20)))

    assert sum(wins) == 1


async def test_upsert_creates_then_replaces(document_store: DocumentStore) -> None:
    drones = document_store.container("drones")
    first = await drones.upsert(drone("d1"))
    second = await drones.upsert(drone("d1", payload=7.5))

    assert first.etag != second.etag
    assert (await drones.get("d1", "d1")).body["payload"] == 7.5  # type: ignore[union-attr]


async def test_delete_answers_whether_there_was_something(document_store: DocumentStore) -> None:
    drones = document_store.container("drones")
    await drones.create(drone("d1"))

    assert await drones.delete("d1", "d1") is True
    assert await drones.delete("d1", "d1") is False
    assert await drones.get("d1", "d1") is None


async def test_conditional_delete_respects_the_etag(document_store: DocumentStore) -> None:
    drones = document_store.container("drones")
    created = await drones.create(drone("d1"))
    changed = await drones.replace(drone("d1", status="Assigned"), etag=created.etag)

    with pytest.raises(PreconditionFailedError):
        await drones.delete("d1", "d1", etag=created.etag)
    assert await drones.delete("d1", "d1", etag=changed.etag) is True


async def test_query_by_equality_and_range(document_store: DocumentStore) -> None:
    drones = document_store.container("drones")
    for i, (status, payload) in enumerate(
        [("Free", 2.0), ("Free", 10.0), ("Assigned", 20.0), ("Free", 25.0)]
    ):
        await drones.create(drone(f"d{i}", status, payload))

    free_heavy = await drones.query(
        ("status", "=", "Free"), ("payload", ">=", 10.0), order_by="payload"
    )
    not_free = await drones.query(("status", "!=", "Free"))
    top = await drones.query(order_by="payload", descending=True, limit=2)

    assert [d.id for d in free_heavy] == ["d1", "d3"]
    assert [d.id for d in not_free] == ["d2"]
    assert [d.id for d in top] == ["d3", "d2"]
    assert all(d.etag for d in free_heavy)


async def test_query_on_nested_fields_booleans_and_nulls(document_store: DocumentStore) -> None:
    drones = document_store.container("drones")
    await drones.create(
        drone("a", lease={"owner": "r1", "expiresAt": 100.0}, active=True, deliveryId=None)
    )
    await drones.create(
        drone("b", lease={"owner": "r2", "expiresAt": 300.0}, active=False, deliveryId="x")
    )

    expired = await drones.query(("lease.expiresAt", "<", 200.0))
    active = await drones.query(("active", "=", True))
    unassigned = await drones.query(("deliveryId", "=", None))

    assert [d.id for d in expired] == ["a"]
    assert [d.id for d in active] == ["a"]
    assert [d.id for d in unassigned] == ["a"]


async def test_not_null_means_present_and_not_null(document_store: DocumentStore) -> None:
    drones = document_store.container("drones")
    await drones.create(drone("held", deliveryId="x", claimedAt="2026-11-01T10:00:00Z"))
    await drones.create(drone("freed", deliveryId=None, claimedAt=None))
    await drones.create(drone("never-held"))  # the fields absent altogether
    await drones.create(drone("held-later", deliveryId="y", claimedAt="2026-11-01T12:00:00Z"))

    held = await drones.query(("deliveryId", "!=", None))
    held_long = await drones.query(
        ("deliveryId", "!=", None), ("claimedAt", "<=", "2026-11-01T11:00:00Z")
    )

    assert sorted(d.id for d in held) == ["held", "held-later"]
    assert [d.id for d in held_long] == ["held"]
    assert await drones.count(("deliveryId", "!=", None)) == 2
    assert await drones.count(("deliveryId", "=", None)) == 2


async def test_the_first_few_by_a_nested_field_across_partitions(
    document_store: DocumentStore,
) -> None:
    drones = document_store.container("drones")
    for name, expires in [("d1", 300.0), ("d2", 100.0), ("d3", 200.0), ("d4", 900.0)]:
        await drones.create(drone(name, work={"leaseExpiresAt": expires}))
    await drones.create(drone("idle", work=None))

    oldest = await drones.query(
        ("work.leaseExpiresAt", "<", 500.0), order_by="work.leaseExpiresAt", limit=2
    )

    assert [d.id for d in oldest] == ["d2", "d3"]


@pytest.mark.parametrize("field", ["value", "order", "top", "select", "from", "by"])
async def test_fields_named_like_query_keywords_work(
    document_store: DocumentStore, field: str
) -> None:
    drones = document_store.container("drones")
    for n in (3, 1, 2):
        await drones.create({"id": f"d{n}", field: n, "nested": {field: n}})

    matched = await drones.query((field, ">=", 2), order_by=field, descending=True)
    nested = await drones.query((f"nested.{field}", "=", 1), order_by=f"nested.{field}")

    assert [d.id for d in matched] == ["d3", "d2"]
    assert [d.id for d in nested] == ["d1"]
    assert await drones.count((field, "<", 3)) == 2


@pytest.mark.parametrize("id", [".", "..", "a/b", "a\\b", "a?b", "a#b"])
async def test_ids_that_not_every_backend_can_store_are_refused(
    document_store: DocumentStore, id: str
) -> None:
    drones = document_store.container("drones")

    for write in (drones.create, drones.upsert):
        with pytest.raises(ValueError, match="document id"):
            await write(drone(id))
    with pytest.raises(ValueError, match="document id"):
        await drones.replace(drone(id), etag='"any"')
    assert await drones.get(id, id) is None
    assert await drones.delete(id, id) is False
    assert await drones.query() == []


@pytest.mark.parametrize("owner", [2026, 1.5, True, {"id": "alice"}])
async def test_partition_keys_that_are_not_strings_are_refused(
    document_store: DocumentStore, owner: object
) -> None:
    # Cosmos DB would file the document under the value, where get(id, str(value)) never finds it.
    flights = document_store.container("flights")

    for write in (flights.create, flights.upsert):
        with pytest.raises(ValueError, match="partition key"):
            await write({"id": "f1", "ownerId": owner})
    assert await flights.count() == 0


async def test_query_and_count_within_one_partition(document_store: DocumentStore) -> None:
    flights = document_store.container("flights")
    for i in range(3):
        await flights.create({"id": f"a{i}", "ownerId": "alice", "month": "2026-11"})
    await flights.create({"id": "a9", "ownerId": "alice", "month": "2026-10"})
    await flights.create({"id": "b0", "ownerId": "bob", "month": "2026-11"})

    alice_november = await flights.query(("month", "=", "2026-11"), partition="alice")

    assert sorted(d.id for d in alice_november) == ["a0", "a1", "a2"]
    assert await flights.count(("month", "=", "2026-11"), partition="alice") == 3
    assert await flights.count(("month", "=", "2026-11")) == 4
    assert await flights.count(partition="carol") == 0


async def test_ids_of_the_matching_documents(document_store: DocumentStore) -> None:
    drones = document_store.container("drones")
    await drones.create(drone("held", claimedAt="2026-11-01T10:00:00Z"))
    await drones.create(drone("freed", claimedAt=None))
    await drones.create(drone("never-held"))
    flights = document_store.container("flights")
    await flights.create({"id": "a0", "ownerId": "alice", "month": "2026-11"})
    await flights.create({"id": "b0", "ownerId": "bob", "month": "2026-11"})

    assert sorted(await drones.ids(("claimedAt", "=", None))) == ["freed", "never-held"]
    assert await drones.ids(("claimedAt", "!=", None)) == ["held"]
    assert sorted(await drones.ids()) == ["freed", "held", "never-held"]
    assert await flights.ids(("month", "=", "2026-11"), partition="bob") == ["b0"]
    assert await flights.ids(partition="carol") == []


@pytest.mark.parametrize("field", ["x; DROP TABLE drones", "a'b", "", "1abc"])
async def test_field_names_that_are_not_plain_are_refused(
    document_store: DocumentStore, field: str
) -> None:
    with pytest.raises(ValueError, match="field name"):
        await document_store.container("drones").query((field, "=", 1))


async def test_sqlite_files_from_before_indexed_columns_are_brought_up_to_date(
    tmp_path: Path,
) -> None:
    """A developer's .data/ written before indexed fields had columns of their own still works."""
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as old:
        old.execute(
            'CREATE TABLE "drones" (pk TEXT NOT NULL, id TEXT NOT NULL, etag TEXT NOT NULL, '
            "body TEXT NOT NULL, PRIMARY KEY (pk, id)) WITHOUT ROWID"
        )
        old.execute('CREATE INDEX "drones__status" ON "drones" (json_extract(body, \'$.status\'))')
        old.execute(
            "INSERT INTO drones VALUES ('d1', 'd1', '\"e1\"', ?)",
            ('{"id": "d1", "status": "Free", "payload": 5.0}',),
        )
        old.commit()

    spec = ContainerSpec("drones", indexed=("status",))
    async with SqliteDocumentStore(f"sqlite:///{path}", [spec], timeout=5) as store:
        drones = store.container("drones")
        found = await drones.query(("status", "=", "Free"), ("payload", ">", 1))
        kept = await drones.get("d1", "d1")
        await drones.create(drone("d2", status="Busy"))

    assert [d.id for d in found] == ["d1"]
    assert kept is not None
    assert kept.etag == '"e1"'  # a reader's ETag stays valid
    with closing(sqlite3.connect(path)) as new:
        schema = dict(new.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))
    # Rebuilt as a rowid table, with the index on the field's own column.
    assert "WITHOUT ROWID" not in schema["drones"]
    assert schema["drones__status"] == 'CREATE INDEX "drones__status" ON "drones" ("status")'
    assert "drones__without_rowid" not in schema
