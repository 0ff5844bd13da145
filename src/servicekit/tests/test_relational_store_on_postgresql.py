"""The relational store on PostgreSQL through psqlODBC, under faults: ended connections, slow statements.

The contract suite (test_relational_store.py) runs on PostgreSQL too; these tests are about what only a
server does. PostgreSQL is shared, so the faults are confined to the test's own database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from servicekit.stores.errors import StoreUnavailableError
from servicekit.stores.relational import Connection, Migration, Migrations, RelationalStore
from servicekit.stores.urls import OdbcUrl, parse_store_url
from servicekit.testing_backends.postgres import PostgresTestServer

pytestmark = pytest.mark.backend

SCHEMA = Migrations(Migration(1, ["CREATE TABLE flights (id {key} PRIMARY KEY, miles {real})"]))


@pytest.fixture
async def db(odbc_store_url: str) -> AsyncIterator[RelationalStore]:
    async with RelationalStore(odbc_store_url, SCHEMA, timeout=3.0, workers=4) as store:
        await store.wait_ready()
        yield store


@pytest.fixture
def database(odbc_store_url: str) -> str:
    url = parse_store_url(odbc_store_url)
    assert isinstance(url, OdbcUrl)
    return url.options["database"]


def insert(id: str, *, pause: float = 0.0) -> Callable[[Connection], int]:
    def work(c: Connection) -> int:
        if pause:
            c.fetch_one(f"SELECT pg_sleep({pause})")
        return c.execute("INSERT INTO flights (id, miles) VALUES (?, ?)", (id, 1.0))

    return work


async def count(db: RelationalStore) -> int:
    row = await db.read(lambda c: c.fetch_one("SELECT COUNT(*) AS n FROM flights"))
    assert row is not None
    return int(row["n"])


async def test_connections_the_server_ended_are_replaced(
    db: RelationalStore, postgres_server: PostgresTestServer, database: str
) -> None:
    await asyncio.gather(*(db.write(insert(f"before-{i}")) for i in range(8)))

    assert postgres_server.terminate_connections(database) >= 1
    await asyncio.gather(*(db.write(insert(f"after-{i}")) for i in range(8)))

    assert await count(db) == 16


async def test_units_of_work_cut_off_mid_transaction_are_retried_and_land_once(
    db: RelationalStore, postgres_server: PostgresTestServer, database: str
) -> None:
    writes = asyncio.gather(*(db.write(insert(f"w{i}", pause=0.4)) for i in range(4)))
    await asyncio.sleep(0.2)  # every worker is inside its transaction now

    ended = await asyncio.to_thread(postgres_server.terminate_connections, database)
    await writes

    assert ended >= 1
    assert await count(db) == 4


async def test_a_statement_that_runs_too_long_answers_unavailable_in_time(
    odbc_store_url: str,
) -> None:
    async with RelationalStore(odbc_store_url, SCHEMA, timeout=1.0, workers=1) as db:
        await db.wait_ready()
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            await db.read(lambda c: c.fetch_one("SELECT pg_sleep(10) AS slept"))
        assert time.monotonic() - started < 1.5

        # The server ended the statement, so the only worker is free again.
        await asyncio.sleep(0.2)
        await db.write(insert("next"))
        assert await count(db) == 1
