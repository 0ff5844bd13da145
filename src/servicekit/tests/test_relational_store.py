"""The relational store contract: migrations, transactions, errors and the dialect table, on every backend."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from servicekit.stores import relational
from servicekit.stores.errors import ConstraintViolationError, StoreUnavailableError
from servicekit.stores.relational import Connection, Migration, Migrations, RelationalStore
from servicekit.stores.urls import OdbcUrl, SqliteUrl, parse_store_url

SCHEMA = Migrations(
    Migration(1, ["CREATE TABLE drones (id {key} PRIMARY KEY, payload {real} NOT NULL)"]),
    Migration(2, ["ALTER TABLE drones ADD model {text} NULL"]),
)
INSERT = "INSERT INTO drones (id, payload, model) VALUES (?, ?, ?)"


def insert(id: str, payload: float = 1.0, model: str | None = None) -> Callable[[Connection], int]:
    """A unit of work that inserts one drone."""
    return lambda c: c.execute(INSERT, (id, payload, model))


@pytest.fixture
async def db(relational_url: str) -> AsyncIterator[RelationalStore]:
    async with RelationalStore(relational_url, SCHEMA, timeout=1.0) as store:
        await store.wait_ready()
        yield store


async def test_migrations_are_applied_once_in_order(
    db: RelationalStore, relational_url: str
) -> None:
    await db.write(lambda c: c.execute("INSERT INTO drones VALUES (?, ?, ?)", ("d1", 5.0, "X8")))
    async with RelationalStore(relational_url, SCHEMA) as again:
        await again.wait_ready()
        versions = await again.read(
            lambda c: c.fetch_all("SELECT version FROM schema_migrations ORDER BY version")
        )
        drone = await again.read(lambda c: c.fetch_one("SELECT id, payload, model FROM drones"))

    assert [v["version"] for v in versions] == [1, 2]
    assert drone == {"id": "d1", "payload": 5.0, "model": "X8"}


async def test_a_failed_unit_of_work_is_rolled_back(db: RelationalStore) -> None:
    def insert_then_fail(c: Connection) -> None:
        insert("d2")(c)
        raise ValueError("changed my mind")

    with pytest.raises(ValueError, match="changed my mind"):
        await db.write(insert_then_fail)

    assert await db.read(lambda c: c.fetch_all("SELECT id FROM drones")) == []


async def test_writes_made_together_succeed_or_fail_each_alone(db: RelationalStore) -> None:
    await db.write(insert("taken"))

    def insert_then_fail(c: Connection) -> None:
        insert("half-done", 2.0)(c)
        raise ValueError("changed my mind")

    outcomes = await asyncio.gather(
        db.write(insert("a")),
        db.write(insert("taken", 2.0)),
        db.write(insert_then_fail),
        db.write(insert("b")),
        return_exceptions=True,
    )

    assert outcomes[0] == 1
    assert isinstance(outcomes[1], ConstraintViolationError)
    assert isinstance(outcomes[2], ValueError)
    assert outcomes[3] == 1
    stored = await db.read(lambda c: c.fetch_column("SELECT id FROM drones ORDER BY id"))
    assert stored == ["a", "b", "taken"]


async def test_writes_made_together_while_the_database_is_locked_are_retried(
    db: RelationalStore, relational_url: str
) -> None:
    with _locked(relational_url):
        writes = asyncio.gather(*(db.write(insert(id)) for id in ("a", "b", "c")))
        await asyncio.sleep(0.2)  # the writes wait and retry meanwhile

    assert await writes == [1, 1, 1]


async def test_duplicate_keys_are_constraint_violations(db: RelationalStore) -> None:
    await db.write(insert("d3"))

    with pytest.raises(ConstraintViolationError):
        await db.write(insert("d3", 2.0))


async def test_many_concurrent_writers_all_commit(db: RelationalStore) -> None:
    await asyncio.gather(*(db.write(insert(f"c{i}", i)) for i in range(100)))

    row = await db.read(lambda c: c.fetch_one("SELECT COUNT(*) AS n FROM drones"))
    assert row == {"n": 100}


async def test_of_many_concurrent_inserts_of_one_key_exactly_one_succeeds(
    db: RelationalStore,
) -> None:
    async def won(payload: int) -> bool:
        try:
            await db.write(insert("same", payload))
            return True
        except ConstraintViolationError:
            return False

    wins = await asyncio.gather(*(won(i) for i in range(50)))

    assert sum(wins) == 1
    row = await db.read(lambda c: c.fetch_one("SELECT COUNT(*) AS n FROM drones"))
    assert row == {"n": 1}


async def test_upsert_inserts_then_overwrites(db: RelationalStore) -> None:
    upsert = db.dialect.upsert_sql("drones", key=["id"], columns=["id", "payload", "model"])

    await db.write(lambda c: c.execute(upsert, ("d1", 5.0, "X8")))
    await db.write(lambda c: c.execute(upsert, ("d1", 7.5, None)))
    await db.write(lambda c: c.execute(upsert, ("d2", 1.0, "X4")))

    rows = await db.read(lambda c: c.fetch_all("SELECT id, payload, model FROM drones ORDER BY id"))
    assert rows == [
        {"id": "d1", "payload": 7.5, "model": None},
        {"id": "d2", "payload": 1.0, "model": "X4"},
    ]


async def test_a_column_of_every_row(db: RelationalStore) -> None:
    for number in (2, 1, 3):
        await db.write(insert(f"d{number}", number))

    ids = await db.read(lambda c: c.fetch_column("SELECT id, payload FROM drones ORDER BY payload"))
    none = await db.read(lambda c: c.fetch_column("SELECT id FROM drones WHERE payload > 9"))

    assert ids == ["d1", "d2", "d3"]
    assert none == []


async def test_pages_of_an_ordered_result(db: RelationalStore) -> None:
    for number in range(7):
        await db.write(insert(f"d{number}", number))

    def page(offset: int) -> Callable[[Connection], list[dict[str, object]]]:
        sql = "SELECT id FROM drones ORDER BY payload DESC " + db.dialect.page_sql(3, offset)  # noqa: S608
        return lambda c: c.fetch_all(sql)

    pages = [[row["id"] for row in await db.read(page(offset))] for offset in (0, 3, 6)]

    assert pages == [["d6", "d5", "d4"], ["d3", "d2", "d1"], ["d0"]]


async def test_a_locked_table_answers_unavailable_in_time(
    db: RelationalStore, relational_url: str
) -> None:
    with _locked(relational_url):
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            await db.write(insert("x"))
        assert time.monotonic() - started < 1.5

    await db.write(insert("y"))
    assert await db.read(lambda c: c.fetch_one("SELECT id FROM drones WHERE id = 'y'"))


async def test_calls_wait_for_the_schema(relational_url: str) -> None:
    async with RelationalStore(relational_url, SCHEMA) as store:
        # no wait_ready(): the first call waits for the migrations by itself
        rows = await store.read(lambda c: c.fetch_all("SELECT * FROM drones"))
    assert rows == []


async def test_sqlite_starts_its_wal_over_under_commits_that_never_pause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A passive checkpoint never catches up with these commits: without a restart, the WAL file
    # only grows. A restart waits for a moment between commits (up to half a second), and a fast
    # machine makes thousands of commits meanwhile: the commits go on until the WAL has been
    # started over twice, not for a number of commits that a fast machine finishes first.
    monkeypatch.setattr(relational, "WAL_LIMIT_BYTES", 1024 * 1024)
    monkeypatch.setattr(relational._SqliteBackend, "upkeep_seconds", 0.02)
    wal = tmp_path / "fleet.db-wal"
    cut_back, last_size, committed = 0, 0, 0
    deadline = time.monotonic() + 10
    async with RelationalStore(f"sqlite:///{tmp_path}/fleet.db", SCHEMA) as db:
        await db.wait_ready()
        while cut_back < 2 and committed < 100_000 and time.monotonic() < deadline:
            await db.write(insert(f"d{committed}", model="x" * 3000))
            committed += 1
            await asyncio.sleep(0)  # the upkeep runs beside the commits, as in a busy service
            if committed % 100 == 0:
                size = wal.stat().st_size
                if size < last_size:
                    cut_back += 1
                last_size = size
        count = await db.read(lambda c: c.fetch_one("SELECT COUNT(*) AS n FROM drones"))

    assert count == {"n": committed}
    assert cut_back >= 2, f"the WAL was started over {cut_back} times in {committed} commits"


@contextmanager
def _locked(url: str) -> Iterator[None]:
    """Hold an exclusive lock on the drones table from another connection."""
    match parse_store_url(url):
        case SqliteUrl(path=path):
            import sqlite3

            blocker = sqlite3.connect(path, isolation_level=None)
            blocker.execute("BEGIN EXCLUSIVE")
        case OdbcUrl(connection_string=connection_string):
            import pyodbc

            blocker = pyodbc.connect(connection_string, autocommit=False)
            blocker.execute("LOCK TABLE drones IN ACCESS EXCLUSIVE MODE")
        case _:
            raise AssertionError(url)
    try:
        yield
    finally:
        blocker.rollback()
        blocker.close()
