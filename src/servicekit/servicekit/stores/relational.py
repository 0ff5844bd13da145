"""A relational store over DB-API: sqlite3 for the embedded default, pyodbc for Azure SQL and PostgreSQL.

The services write portable SQL with `?` parameters (both drivers use that style). What differs between
the databases lives in `DIALECTS`, one small table. Every call runs on a worker thread that owns its
connection, inside a transaction, with retries on transient errors and one overall time limit, so a
slow or unreachable database turns into a 503 for the caller instead of a hung request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, Protocol, TypeVar

from tenacity import AsyncRetrying, retry_if_exception, wait_random_exponential

from servicekit.stores.errors import ConstraintViolationError, StoreUnavailableError
from servicekit.stores.preparation import Preparation
from servicekit.stores.urls import OdbcUrl, SqliteUrl, StoreUrlError, parse_store_url

log = logging.getLogger(__name__)

T = TypeVar("T")
Row = dict[str, Any]


@dataclass(frozen=True)
class Dialect:
    """How one database spells what the portable SQL cannot."""

    name: str
    # Column types, used in migrations as {key}, {text}, {real}, {timestamp}. Keys need a bounded type
    # because SQL Server cannot index NVARCHAR(MAX); timestamps are fixed-width ISO-8601 text in UTC,
    # which sorts in time order on every database and binds the same through every driver.
    types: Mapping[str, str]
    # SQL Server has no CREATE TABLE IF NOT EXISTS.
    create_table_if_missing: str = "CREATE TABLE IF NOT EXISTS {table} ({columns})"
    # SQLSTATE classes (pyodbc) that mean "try again": lost connections, timeouts, deadlocks.
    transient_sqlstates: tuple[str, ...] = ()


DIALECTS: Mapping[str, Dialect] = {
    "sqlite": Dialect(
        "sqlite",
        {"key": "TEXT", "text": "TEXT", "real": "REAL", "timestamp": "TEXT"},
    ),
    "postgresql": Dialect(
        "postgresql",
        {
            "key": "VARCHAR(64)",
            "text": "TEXT",
            "real": "DOUBLE PRECISION",
            "timestamp": "VARCHAR(32)",
        },
        transient_sqlstates=("08", "40", "53", "57P", "HYT"),
    ),
    "mssql": Dialect(
        "mssql",
        {
            "key": "NVARCHAR(64)",
            "text": "NVARCHAR(MAX)",
            "real": "FLOAT",
            "timestamp": "VARCHAR(32)",
        },
        create_table_if_missing="IF OBJECT_ID(N'{table}', N'U') IS NULL CREATE TABLE {table} ({columns})",
        transient_sqlstates=("08", "40", "HYT"),
    ),
}


@dataclass(frozen=True)
class Migration:
    """One step of the schema. Applied once, in version order, when the store starts.

    Statements may name column types as {key}, {text}, {real} and {timestamp} (see `Dialect`).
    """

    version: int
    statements: Sequence[str]


class Migrations:
    """The schema as a list of versioned steps; a store applies the ones it has not applied yet."""

    def __init__(self, *migrations: Migration) -> None:
        self._migrations = sorted(migrations, key=lambda m: m.version)

    def __call__(self, conn: Connection) -> None:
        types = conn.dialect.types
        columns = "version INTEGER PRIMARY KEY, applied_at {timestamp} NOT NULL".format(**types)
        conn.execute(
            conn.dialect.create_table_if_missing.format(table="schema_migrations", columns=columns)
        )
        applied = {
            row["version"] for row in conn.fetch_all("SELECT version FROM schema_migrations")
        }
        for migration in self._migrations:
            if migration.version in applied:
                continue
            for statement in migration.statements:
                conn.execute(statement.format(**types))
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (migration.version, datetime.now(UTC).isoformat()),
            )
            log.info("applied schema migration %d", migration.version)


class Cursor(Protocol):
    rowcount: int

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection:
    """The connection a unit of work sees: statements in, rows as dicts out."""

    def __init__(self, raw: Any, dialect: Dialect) -> None:
        self._raw = raw
        self.dialect = dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; answer how many rows it changed."""
        cursor: Cursor = self._raw.execute(sql, tuple(params))
        return cursor.rowcount

    def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        cursor: Cursor = self._raw.execute(sql, tuple(params))
        row = cursor.fetchone()
        return None if row is None else _as_dict(cursor, row)

    def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cursor: Cursor = self._raw.execute(sql, tuple(params))
        return [_as_dict(cursor, row) for row in cursor.fetchall()]


def _as_dict(cursor: Cursor, row: Sequence[Any]) -> Row:
    return {column[0].lower(): value for column, value in zip(cursor.description, row, strict=True)}


class _Backend(Protocol):
    dialect: Dialect
    driver: ModuleType

    def connect(self) -> Any: ...

    def begin(self, raw: Any, *, write: bool) -> None: ...

    def is_transient(self, exc: BaseException) -> bool: ...


class _SqliteBackend:
    def __init__(self, url: SqliteUrl, busy_timeout: float) -> None:
        self.dialect = DIALECTS["sqlite"]
        self.driver: ModuleType = sqlite3
        self._path = url.path
        self._busy_timeout = busy_timeout

    def connect(self) -> Any:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are begun explicitly, so writers can take the lock up
        # front (BEGIN IMMEDIATE) instead of failing when a read transaction tries to upgrade.
        raw = sqlite3.connect(self._path, timeout=self._busy_timeout, isolation_level=None)
        raw.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed transaction survives the process being killed at any point.
        raw.execute("PRAGMA synchronous=NORMAL")
        raw.execute("PRAGMA foreign_keys=ON")
        return raw

    def begin(self, raw: Any, *, write: bool) -> None:
        raw.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def is_transient(self, exc: BaseException) -> bool:
        message = str(exc).lower()
        return isinstance(exc, sqlite3.OperationalError) and (
            "locked" in message or "busy" in message or "unable to open" in message
        )


class _OdbcBackend:
    def __init__(self, url: OdbcUrl, timeout: float) -> None:
        # Imported here, not at the top: pyodbc needs libodbc, which only an ODBC deployment installs.
        import pyodbc

        self.driver = pyodbc
        self._url = url
        self._timeout = max(1, round(timeout))
        driver = url.driver.lower()
        if "postgres" in driver:
            self.dialect = DIALECTS["postgresql"]
        elif "sql server" in driver:
            self.dialect = DIALECTS["mssql"]
        else:
            raise StoreUrlError(f"no SQL dialect known for ODBC driver {url.driver!r}")

    def connect(self) -> Any:
        raw = self.driver.connect(
            self._url.connection_string, autocommit=False, timeout=self._timeout
        )
        raw.timeout = (
            self._timeout
        )  # per statement, so a stalled server cannot hold a worker forever
        return raw

    def begin(self, raw: Any, *, write: bool) -> None:
        """pyodbc opens a transaction implicitly with the first statement."""

    def is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, self.driver.OperationalError | self.driver.InterfaceError):
            return True
        sqlstate = str(exc.args[0]) if isinstance(exc, self.driver.Error) and exc.args else ""
        return sqlstate.startswith(self.dialect.transient_sqlstates)


class RelationalStore:
    """A pool of worker threads, each with its own connection, running units of work in transactions.

    `schema` brings the database up to date at start (usually `Migrations(...)`); it runs in the
    background with retries, and calls made before it has finished wait for it within their time limit.
    """

    def __init__(
        self,
        url: str,
        schema: Callable[[Connection], None],
        *,
        timeout: float = 1.0,
        workers: int = 4,
    ) -> None:
        parsed = parse_store_url(url)
        self._backend: _Backend
        match parsed:
            case SqliteUrl():
                self._backend = _SqliteBackend(parsed, busy_timeout=timeout / 2)
            case OdbcUrl():
                self._backend = _OdbcBackend(parsed, timeout)
            case _:
                raise StoreUrlError("a relational store needs a sqlite: or odbc: URL")
        self._schema = schema
        self._timeout = timeout
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="store")
        self._local = threading.local()
        self._preparation = Preparation("relational", self._prepare_schema)

    @property
    def dialect(self) -> Dialect:
        return self._backend.dialect

    async def start(self) -> None:
        self._preparation.start()

    async def __aenter__(self) -> RelationalStore:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def wait_ready(self, timeout: float = 30.0) -> None:
        await self._preparation.wait(timeout)

    async def stop(self) -> None:
        await self._preparation.stop()
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def read(self, work: Callable[[Connection], T]) -> T:
        return await self._run(work, write=False, prepared=True)

    async def write(self, work: Callable[[Connection], T]) -> T:
        return await self._run(work, write=True, prepared=True)

    async def _run(self, work: Callable[[Connection], T], *, write: bool, prepared: bool) -> T:
        loop = asyncio.get_running_loop()
        call = functools.partial(self._in_transaction, work, write)
        retrying = AsyncRetrying(
            retry=retry_if_exception(self._backend.is_transient),
            wait=wait_random_exponential(multiplier=0.02, max=0.25),
            reraise=True,
        )
        try:
            async with asyncio.timeout(self._timeout):
                if prepared:
                    await self._preparation.wait(self._timeout)
                async for attempt in retrying:
                    with attempt:
                        return await loop.run_in_executor(self._executor, call)
        except TimeoutError:
            raise StoreUnavailableError("the database did not answer in time") from None
        except ConstraintViolationError:
            raise
        except Exception as exc:
            if self._backend.is_transient(exc):
                raise StoreUnavailableError(f"the database is unavailable: {exc}") from exc
            raise
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    def _in_transaction(self, work: Callable[[Connection], T], write: bool) -> T:
        raw = self._connection()
        try:
            self._backend.begin(raw, write=write)
            result = work(Connection(raw, self._backend.dialect))
            raw.commit()
            return result
        except BaseException as exc:
            self._rollback_or_drop(raw)
            if isinstance(exc, self._backend.driver.IntegrityError):
                raise ConstraintViolationError(str(exc)) from exc
            raise

    def _connection(self) -> Any:
        raw = getattr(self._local, "connection", None)
        if raw is None:
            raw = self._local.connection = self._backend.connect()
        return raw

    def _rollback_or_drop(self, raw: Any) -> None:
        try:
            raw.rollback()
        except Exception:
            # The connection is broken (server restarted, network cut): the next call reconnects.
            self._local.connection = None
            with contextlib.suppress(Exception):
                raw.close()

    async def _prepare_schema(self) -> None:
        await self._run(self._schema, write=True, prepared=False)
