"""The relational store on SQLite: migrations, transactions, errors, and a database that is locked."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from servicekit.stores.errors import ConstraintViolationError, StoreUnavailableError
from servicekit.stores.relational import Connection, Migration, Migrations, RelationalStore

SCHEMA = Migrations(
    Migration(1, ["CREATE TABLE drones (id {key} PRIMARY KEY, payload {real} NOT NULL)"]),
    Migration(2, ["ALTER TABLE drones ADD COLUMN model {text} NULL"]),
)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[RelationalStore]:
    async with RelationalStore(f"sqlite:///{tmp_path}/test.db", SCHEMA, timeout=1.0) as store:
        await store.wait_ready()
        yield store


async def test_migrations_are_applied_once_in_order(db: RelationalStore, tmp_path: Path) -> None:
    await db.write(lambda c: c.execute("INSERT INTO drones VALUES (?, ?, ?)", ("d1", 5.0, "X8")))
    async with RelationalStore(f"sqlite:///{tmp_path}/test.db", SCHEMA) as again:
        await again.wait_ready()
        versions = await again.read(lambda c: c.fetch_all("SELECT version FROM schema_migrations"))
        drone = await again.read(lambda c: c.fetch_one("SELECT * FROM drones"))

    assert [v["version"] for v in versions] == [1, 2]
    assert drone == {"id": "d1", "payload": 5.0, "model": "X8"}


async def test_a_failed_unit_of_work_is_rolled_back(db: RelationalStore) -> None:
    def insert_then_fail(c: Connection) -> None:
        c.execute("INSERT INTO drones (id, payload) VALUES (?, ?)", ("d2", 1.0))
        raise ValueError("changed my mind")

    with pytest.raises(ValueError, match="changed my mind"):
        await db.write(insert_then_fail)

    assert await db.read(lambda c: c.fetch_all("SELECT id FROM drones")) == []


async def test_duplicate_keys_are_constraint_violations(db: RelationalStore) -> None:
    insert = "INSERT INTO drones (id, payload) VALUES (?, ?)"
    await db.write(lambda c: c.execute(insert, ("d3", 1.0)))

    with pytest.raises(ConstraintViolationError):
        await db.write(lambda c: c.execute(insert, ("d3", 2.0)))


async def test_many_concurrent_writers_all_commit(db: RelationalStore) -> None:
    def insert(number: int) -> Callable[[Connection], int]:
        sql = "INSERT INTO drones (id, payload) VALUES (?, ?)"
        return lambda c: c.execute(sql, (f"c{number}", number))

    await asyncio.gather(*(db.write(insert(i)) for i in range(100)))

    row = await db.read(lambda c: c.fetch_one("SELECT COUNT(*) AS n FROM drones"))
    assert row == {"n": 100}


async def test_a_locked_database_answers_unavailable_in_time(
    db: RelationalStore, tmp_path: Path
) -> None:
    blocker = sqlite3.connect(tmp_path / "test.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            await db.write(lambda c: c.execute("INSERT INTO drones (id, payload) VALUES ('x', 1)"))
        assert time.monotonic() - started < 1.5
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    await db.write(lambda c: c.execute("INSERT INTO drones (id, payload) VALUES ('x', 1)"))


async def test_calls_wait_for_the_schema(tmp_path: Path) -> None:
    async with RelationalStore(f"sqlite:///{tmp_path}/fresh.db", SCHEMA) as store:
        # no wait_ready(): the first call waits for the migrations by itself
        rows = await store.read(lambda c: c.fetch_all("SELECT * FROM drones"))
    assert rows == []
