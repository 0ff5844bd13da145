"""PostgreSQL through psqlODBC for tests: a throwaway database per test on a running server.

The server is the machine's (127.0.0.1:5432, trust authentication, user postgres, as in CI); override
with TEST_POSTGRES_HOST, TEST_POSTGRES_PORT and TEST_POSTGRES_USER. Every database made here is named
after the test session, so that `drop_all` can remove whatever a session left behind.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from servicekit.testing_backends import BackendUnavailableError

ODBC_DRIVER = "PostgreSQL Unicode"


class PostgresTestServer:
    def __init__(self) -> None:
        self.host = os.environ.get("TEST_POSTGRES_HOST", "127.0.0.1")
        self.port = int(os.environ.get("TEST_POSTGRES_PORT", "5432"))
        self.user = os.environ.get("TEST_POSTGRES_USER", "postgres")
        self.prefix = f"dronetest_{uuid.uuid4().hex[:8]}_"
        self._pyodbc: Any = None

    def connection_string(self, database: str) -> str:
        return (
            f"Driver={{{ODBC_DRIVER}}};Server={self.host};Port={self.port};"
            f"Database={database};UID={self.user}"
        )

    def url(self, database: str) -> str:
        """The store URL of a database on this server."""
        return f"odbc:{self.connection_string(database)}"

    def check(self) -> None:
        """Raise BackendUnavailableError unless pyodbc, psqlODBC and the server are all there."""
        try:
            import pyodbc
        except ImportError as exc:
            raise BackendUnavailableError(
                f"pyodbc cannot load unixODBC ({exc}); install unixodbc and odbc-postgresql"
            ) from exc
        if ODBC_DRIVER not in pyodbc.drivers():
            raise BackendUnavailableError(
                f"the ODBC driver {ODBC_DRIVER!r} is not installed (Debian: odbc-postgresql)"
            )
        self._pyodbc = pyodbc
        try:
            self._admin("SELECT 1")
        except pyodbc.Error as exc:
            raise BackendUnavailableError(
                f"PostgreSQL is not reachable at {self.host}:{self.port}: {exc}"
            ) from exc

    def create_database(self) -> str:
        name = f"{self.prefix}{uuid.uuid4().hex[:8]}"
        self._admin(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'")
        return name

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop_all(self) -> None:
        """Drop every database this session made (one a test failed to drop, too)."""
        for (name,) in self._admin(
            "SELECT datname FROM pg_database WHERE datname LIKE ?", (f"{self.prefix}%",)
        ):
            self.drop_database(name)

    def terminate_connections(self, database: str) -> int:
        """End every server process connected to `database`, as a restart or a network cut would."""
        rows = self._admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = ? AND pid <> pg_backend_pid()",
            (database,),
        )
        return len(rows)

    @contextmanager
    def refusing_connections(self, database: str) -> Iterator[None]:
        """While the block runs, `database` refuses new connections and its open ones are ended, as
        during a failover or a network cut; other databases on the server are not touched."""
        self._admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        try:
            self.terminate_connections(database)
            yield
        finally:
            self._admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')

    def _admin(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        # CREATE and DROP DATABASE cannot run inside a transaction: autocommit.
        conn = self._pyodbc.connect(self.connection_string("postgres"), autocommit=True, timeout=5)
        try:
            cursor = conn.execute(sql, params)
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            conn.close()
