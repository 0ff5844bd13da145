"""A relational store over DB-API: sqlite3 for the embedded default, pyodbc for Azure SQL and PostgreSQL.

The services write portable SQL with `?` parameters (both drivers use that style). What differs between
the databases lives in `DIALECTS`, one small table. Every call runs inside a transaction, with
retries on transient errors and one overall time limit, so a slow or unreachable database turns into a
503 for the caller instead of a hung request. Nothing waits on the event loop: a database server's
calls run on worker threads that own their connections; SQLite's calls, which never wait (see
`_SqliteBackend`), run on the loop itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, Protocol, TypeVar

from opentelemetry import trace
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_random_exponential

from servicekit.stores.errors import ConstraintViolationError, StoreUnavailableError
from servicekit.stores.preparation import Preparation
from servicekit.stores.urls import OdbcUrl, SqliteUrl, StoreUrlError, parse_store_url
from servicekit.telemetry import current_telemetry

log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)

T = TypeVar("T")
Row = dict[str, Any]


@dataclass(frozen=True)
class Dialect:
    """How one database spells what the portable SQL cannot.

    Statements built from these templates are still parameterised with `?`: only table and column
    names (constants of the calling code) and integers are formatted into the text.
    """

    name: str
    # Column types, used in migrations as {key}, {text}, {real}, {timestamp}. Keys need a bounded type
    # because SQL Server cannot index NVARCHAR(MAX); timestamps are fixed-width ISO-8601 text in UTC,
    # which sorts in time order on every database and binds the same through every driver.
    types: Mapping[str, str]
    # SQL Server has no CREATE TABLE IF NOT EXISTS.
    create_table_if_missing: str = "CREATE TABLE IF NOT EXISTS {table} ({columns})"
    # Insert a row, or overwrite the row with its key. {new} names the row being written.
    upsert: str = "INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT ({key}) DO UPDATE SET {updates}"
    upsert_new_row: str = "excluded"
    # A page of an ordered result. SQL Server only pages after an ORDER BY.
    page: str = "LIMIT {limit} OFFSET {offset}"
    # How each statement gets a time limit on the server: a session setting run after connecting
    # ({milliseconds}), or None for the ODBC query timeout attribute.
    statement_timeout: str | None = None
    # SQLSTATE prefixes (pyodbc) that mean "try again": lost connections, timeouts, deadlocks, a
    # server that is starting or shutting down.
    transient_sqlstates: tuple[str, ...] = ()
    # SQLSTATE prefixes after which the connection is dead, even if the driver still accepts calls.
    connection_lost_sqlstates: tuple[str, ...] = ()

    def upsert_sql(self, table: str, key: Sequence[str], columns: Sequence[str]) -> str:
        """An upsert of `columns` (which include the `key` columns) into `table`, `?` per column."""
        new = self.upsert_new_row
        updates = [f"{name} = {new}.{name}" for name in columns if name not in key]
        if not updates:
            raise ValueError("an upsert needs a column besides the key")
        return self.upsert.format(
            table=table,
            columns=", ".join(columns),
            values=", ".join("?" for _ in columns),
            key=", ".join(key),
            match=" AND ".join(f"{table}.{name} = {new}.{name}" for name in key),
            updates=", ".join(updates),
            new=new,
            new_values=", ".join(f"{new}.{name}" for name in columns),
        )

    def page_sql(self, limit: int, offset: int = 0) -> str:
        """The clause that follows ORDER BY to keep `limit` rows after skipping `offset`."""
        return self.page.format(limit=int(limit), offset=int(offset))


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
        # psqlODBC refuses the ODBC connection timeout attribute; the server enforces this instead.
        statement_timeout="SET statement_timeout = {milliseconds}",
        # 08: connection, 40: serialization failure or deadlock, 53: out of resources,
        # 57014: statement timeout, 57P: server shutting down or starting, HYT: driver timeout.
        transient_sqlstates=("08", "40", "53", "57014", "57P", "HYT"),
        connection_lost_sqlstates=("08", "57P"),
    ),
    "mssql": Dialect(
        "mssql",
        {
            # A binary collation: keys compare exactly, as on SQLite and PostgreSQL, where the
            # default collation of Azure SQL would take "ABC" and "abc" for one key.
            "key": "NVARCHAR(64) COLLATE Latin1_General_100_BIN2",
            "text": "NVARCHAR(MAX)",
            "real": "FLOAT",
            "timestamp": "VARCHAR(32)",
        },
        create_table_if_missing="IF OBJECT_ID(N'{table}', N'U') IS NULL CREATE TABLE {table} ({columns})",
        # HOLDLOCK: without it two concurrent MERGEs of a new key can both take the INSERT branch.
        upsert=(
            "MERGE INTO {table} WITH (HOLDLOCK) USING (VALUES ({values})) AS {new} ({columns}) "
            "ON {match} WHEN MATCHED THEN UPDATE SET {updates} "
            "WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({new_values});"
        ),
        upsert_new_row="source",
        page="OFFSET {offset} ROWS FETCH NEXT {limit} ROWS ONLY",
        # 08: connection, 40: deadlock victim (40001), HYT: driver timeout.
        transient_sqlstates=("08", "40", "HYT"),
        connection_lost_sqlstates=("08",),
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
        return None if row is None else dict(zip(_column_names(cursor), row, strict=True))

    def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cursor: Cursor = self._raw.execute(sql, tuple(params))
        names = _column_names(cursor)  # once a statement, not once a row
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def fetch_column(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The first column of every row: for lists of keys, without a dict a row."""
        cursor: Cursor = self._raw.execute(sql, tuple(params))
        return [row[0] for row in cursor.fetchall()]


def _column_names(cursor: Cursor) -> list[str]:
    return [column[0].lower() for column in cursor.description]


class _Backend(Protocol):
    dialect: Dialect
    driver: ModuleType

    def connect(self) -> Any: ...

    def begin(self, raw: Any, *, write: bool) -> None: ...

    def is_transient(self, exc: BaseException) -> bool: ...

    def is_connection_lost(self, exc: BaseException) -> bool: ...

    def ping(self, raw: Any) -> None:
        """Raise if the connection no longer works."""

    @property
    def blocking(self) -> bool:
        """Whether a call may wait: on a server, on the network, on a lock. Those run on threads."""

    @property
    def upkeep_seconds(self) -> float | None:
        """How often `upkeep` runs (on a thread); None when the backend needs none."""

    def upkeep(self) -> None: ...


WAL_LIMIT_BYTES = 64 * 1024 * 1024
"""The size past which an upkeep starts the WAL over (see `_SqliteBackend.upkeep`)."""
# How long the restart may wait for the writer and readers of the moment: each holds the database for
# well under a millisecond.
_RESTART_TIMEOUT = 0.5


class _SqliteBackend:
    """SQLite runs in this process and, set up as below, never waits inside a call: a busy database
    answers SQLITE_BUSY at once (busy timeout 0; the store retries without blocking), and the only
    disk flushes, the WAL checkpoints, run on a thread of their own (see RelationalStore). So its
    calls are made on the event loop: a thread hand-off would cost more than the call itself."""

    blocking = False
    upkeep_seconds = 1.0

    def __init__(self, url: SqliteUrl) -> None:
        self.dialect = DIALECTS["sqlite"]
        self.driver: ModuleType = sqlite3
        self._path = url.path

    def connect(self) -> Any:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are begun explicitly, so writers can take the lock up
        # front (BEGIN IMMEDIATE) instead of failing when a read transaction tries to upgrade.
        raw = sqlite3.connect(self._path, timeout=0, isolation_level=None, check_same_thread=False)
        raw.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed transaction survives the process being killed at any point.
        raw.execute("PRAGMA synchronous=NORMAL")
        raw.execute("PRAGMA foreign_keys=ON")
        # Commits never checkpoint (a checkpoint flushes to disk): upkeep() does, on a thread.
        raw.execute("PRAGMA wal_autocheckpoint=0")
        # When the WAL starts over, its file is cut back to this size rather than kept at its largest.
        raw.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        return raw

    def upkeep(self) -> None:
        """Checkpoint: move the WAL's pages into the database file, and keep the WAL bounded.

        A passive checkpoint copies the pages the WAL held when it began, and SQLite writes the WAL
        from its start again only after a checkpoint that left nothing behind: under commits that
        never pause, the WAL would grow without end (990 MB in the benchmark's half minute of
        delivery requests). Past `WAL_LIMIT_BYTES`, a restart copies what the passive one missed and
        starts the WAL over; writers are refused meanwhile (and retry), for the tens of milliseconds
        it takes. When nothing was committed since, the passive checkpoint left nothing to copy, and
        the restart returns at once.
        """
        with contextlib.closing(sqlite3.connect(self._path, timeout=_RESTART_TIMEOUT)) as raw:
            _, frames, _ = raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            (page_size,) = raw.execute("PRAGMA page_size").fetchone()
            if frames * page_size > WAL_LIMIT_BYTES:
                raw.execute("PRAGMA wal_checkpoint(RESTART)")

    def begin(self, raw: Any, *, write: bool) -> None:
        raw.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def is_transient(self, exc: BaseException) -> bool:
        message = str(exc).lower()
        return isinstance(exc, sqlite3.OperationalError) and (
            "locked" in message or "busy" in message or "unable to open" in message
        )

    def is_connection_lost(self, exc: BaseException) -> bool:
        return False  # a file does not hang up

    def ping(self, raw: Any) -> None:
        """A file does not hang up."""


# The pre-connection attribute of Microsoft's ODBC drivers that carries a Microsoft Entra access token.
SQL_COPT_SS_ACCESS_TOKEN = 1256
AZURE_SQL_SCOPE = "https://database.windows.net/.default"


class EntraAccessToken:
    """Microsoft Entra access tokens for Azure SQL, in the form the ODBC driver takes them.

    The token is fetched with azure-identity's `DefaultAzureCredential` (on AKS: workload identity)
    and fetched again once it is within `refresh_margin` seconds of expiring. Open connections stay
    authenticated after their token expires; only new connections need a fresh one.
    """

    def __init__(self, credential: Any = None, *, refresh_margin: float = 300.0) -> None:
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        self._credential = credential
        self._refresh_margin = refresh_margin
        self._lock = threading.Lock()
        self._token: Any = None

    def connection_attribute(self) -> bytes:
        """The ACCESSTOKEN struct: the token's byte length (little-endian), then the token in UTF-16-LE."""
        with self._lock:
            if self._token is None or self._token.expires_on - time.time() < self._refresh_margin:
                self._token = self._credential.get_token(AZURE_SQL_SCOPE)
            encoded: bytes = self._token.token.encode("utf-16-le")
        return struct.pack("<I", len(encoded)) + encoded


_ODBC_CREDENTIAL_OPTIONS = ("uid", "pwd", "authentication", "trusted_connection")


class _OdbcBackend:
    blocking = True
    upkeep_seconds = None

    def __init__(self, url: OdbcUrl, timeout: float) -> None:
        # Imported here, not at the top: pyodbc needs libodbc, which only an ODBC deployment installs.
        try:
            import pyodbc
        except ImportError as exc:  # no libodbc.so.2: unixODBC is not installed
            raise StoreUrlError(
                f"an odbc: store needs pyodbc and the unixODBC library ({exc}); "
                "on Debian: apt-get install unixodbc"
            ) from exc

        self.driver: ModuleType = pyodbc
        self._url = url
        self._timeout = max(1, math.ceil(timeout))
        driver = url.driver.lower()
        if "postgres" in driver:
            self.dialect = DIALECTS["postgresql"]
        elif "sql server" in driver:
            self.dialect = DIALECTS["mssql"]
        else:
            raise StoreUrlError(f"no SQL dialect known for ODBC driver {url.driver!r}")
        # Azure SQL without credentials in the connection string: the pod's Microsoft Entra identity.
        self._entra_token: EntraAccessToken | None = None
        if self.dialect.name == "mssql" and not any(
            option in url.options for option in _ODBC_CREDENTIAL_OPTIONS
        ):
            self._entra_token = EntraAccessToken()

    def connect(self) -> Any:
        attributes = {}
        if self._entra_token is not None:
            attributes[SQL_COPT_SS_ACCESS_TOKEN] = self._entra_token.connection_attribute()
        raw = self.driver.connect(
            self._url.connection_string,
            autocommit=False,
            timeout=self._timeout,  # the login timeout
            attrs_before=attributes or None,
        )
        # Per statement, so a stalled server cannot hold a worker thread forever.
        if self.dialect.statement_timeout is None:
            raw.timeout = self._timeout
        else:
            raw.execute(self.dialect.statement_timeout.format(milliseconds=self._timeout * 1000))
            raw.commit()
        return raw

    def begin(self, raw: Any, *, write: bool) -> None:
        """pyodbc opens a transaction implicitly with the first statement."""

    def is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, self.driver.OperationalError | self.driver.InterfaceError):
            return True
        return self._sqlstate(exc).startswith(self.dialect.transient_sqlstates)

    def is_connection_lost(self, exc: BaseException) -> bool:
        return self._sqlstate(exc).startswith(self.dialect.connection_lost_sqlstates)

    def ping(self, raw: Any) -> None:
        raw.execute("SELECT 1").fetchall()
        raw.rollback()

    def upkeep(self) -> None:
        """A server keeps itself."""

    def _sqlstate(self, exc: BaseException) -> str:
        return str(exc.args[0]) if isinstance(exc, self.driver.Error) and exc.args else ""


_RETRY_WAIT = wait_random_exponential(multiplier=0.02, max=0.25)


async def _first_wait(state: RetryCallState) -> None:
    """Before the first retry, the wait that follows a first failure (it happened before tenacity)."""
    if state.attempt_number == 1:
        await asyncio.sleep(_RETRY_WAIT(state))


class _ConnectionLostError(Exception):
    """A unit of work failed because its connection broke; on a new connection it may succeed."""


class RelationalStore:
    """Units of work in transactions: on worker threads, each with its own connection, for a
    database whose calls may block (a server); on the event loop for one whose calls cannot (SQLite).

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
                self._backend = _SqliteBackend(parsed)
            case OdbcUrl():
                self._backend = _OdbcBackend(parsed, timeout)
            case _:
                raise StoreUrlError("a relational store needs a sqlite: or odbc: URL")
        self._schema = schema
        self._timeout = timeout
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="store")
        self._local = threading.local()
        self._connections: set[Any] = set()  # every worker's, so that stop() can close them
        self._connections_lock = threading.Lock()
        self._preparation = Preparation("relational", self._prepare_schema)
        self._upkeep: asyncio.Task[None] | None = None

    @property
    def dialect(self) -> Dialect:
        return self._backend.dialect

    async def start(self) -> None:
        self._preparation.start()
        if self._backend.upkeep_seconds is not None and self._upkeep is None:
            self._upkeep = asyncio.create_task(self._keep_up(self._backend.upkeep_seconds))

    async def __aenter__(self) -> RelationalStore:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def wait_ready(self, timeout: float = 30.0) -> None:
        await self._preparation.wait(timeout)

    async def stop(self) -> None:
        await self._preparation.stop()
        if self._upkeep is not None:
            self._upkeep.cancel()
            await asyncio.gather(self._upkeep, return_exceptions=True)
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
        with self._connections_lock:
            connections, self._connections = self._connections, set()
        for raw in connections:
            with contextlib.suppress(Exception):
                raw.close()

    async def read(self, work: Callable[[Connection], T]) -> T:
        with self._span("read"):
            return await self._run(work, write=False, prepared=True)

    async def write(self, work: Callable[[Connection], T]) -> T:
        with self._span("write"):
            return await self._run(work, write=True, prepared=True)

    def _span(self, operation: str) -> AbstractContextManager[object]:
        if not current_telemetry().enabled:
            return contextlib.nullcontext()  # even a no-op span costs microseconds on every call
        system = self.dialect.name
        return _tracer.start_as_current_span(
            f"{system} {operation}",
            kind=trace.SpanKind.CLIENT,
            attributes={"db.system.name": system, "db.operation.name": operation},
        )

    async def _run(self, work: Callable[[Connection], T], *, write: bool, prepared: bool) -> T:
        call = functools.partial(self._in_transaction, work, write)
        attempted = False
        if not self._backend.blocking and (self._preparation.done or not prepared):
            # A call that cannot wait needs no clock, until it has to be retried.
            attempted = True
            try:
                return call()
            except Exception as exc:
                if not self._is_transient(exc):
                    raise
        try:
            async with asyncio.timeout(self._timeout):
                if prepared and not self._preparation.done:
                    await self._preparation.wait(self._timeout)
                # Nearly every call succeeds at once: only a transient failure pays for retrying.
                if not attempted:
                    try:
                        return await self._call(call)
                    except Exception as exc:
                        if not self._is_transient(exc):
                            raise
                retrying = AsyncRetrying(
                    retry=retry_if_exception(self._is_transient),
                    wait=_RETRY_WAIT,
                    before=_first_wait,
                    reraise=True,
                )
                async for attempt in retrying:
                    with attempt:
                        return await self._call(call)
        except TimeoutError:
            raise StoreUnavailableError("the database did not answer in time") from None
        except ConstraintViolationError:
            raise
        except Exception as exc:
            if self._is_transient(exc):
                raise StoreUnavailableError(f"the database is unavailable: {exc}") from exc
            raise
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    async def _call(self, call: Callable[[], T]) -> T:
        if not self._backend.blocking:
            return call()
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def _keep_up(self, every: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(every)
            try:
                await loop.run_in_executor(self._executor, self._backend.upkeep)
            except Exception as exc:  # a busy database is checkpointed next time
                log.debug("store upkeep skipped: %s", exc)

    def _is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, _ConnectionLostError) or self._backend.is_transient(exc)

    def _in_transaction(self, work: Callable[[Connection], T], write: bool) -> T:
        raw = self._connection()
        try:
            self._backend.begin(raw, write=write)
            result = work(Connection(raw, self._backend.dialect))
            raw.commit()
            return result
        except Exception as exc:
            if isinstance(exc, self._backend.driver.IntegrityError):
                self._rollback_or_drop(raw)
                raise ConstraintViolationError(str(exc)) from exc
            if self._backend.is_connection_lost(exc) or not self._recovered(raw):
                self._drop(raw)
                raise _ConnectionLostError(f"the database connection was lost: {exc}") from exc
            raise

    def _connection(self) -> Any:
        raw = getattr(self._local, "connection", None)
        if raw is None:
            raw = self._backend.connect()
            self._local.connection = raw
            with self._connections_lock:
                self._connections.add(raw)
        return raw

    def _recovered(self, raw: Any) -> bool:
        """Roll back, and answer whether the connection still works.

        Some drivers report a connection the server ended as a general error (psqlODBC: HY000), and
        only notice that it is gone when it is used again.
        """
        try:
            raw.rollback()
            self._backend.ping(raw)
        except Exception:
            return False
        return True

    def _rollback_or_drop(self, raw: Any) -> None:
        try:
            raw.rollback()
        except Exception:
            self._drop(raw)

    def _drop(self, raw: Any) -> None:
        """Forget a broken connection (server restarted, network cut): the next call reconnects."""
        self._local.connection = None
        with self._connections_lock:
            self._connections.discard(raw)
        with contextlib.suppress(Exception):
            raw.close()

    async def _prepare_schema(self) -> None:
        await self._run(self._schema, write=True, prepared=False)
