"""pytest fixtures for tests that run on the production store backends' local servers.

    cosmos_server      the Cosmos DB test server of the session (started once, stopped at the end)
    cosmos_store_url   a fresh, empty Cosmos database on it, dropped after the test; the key is
                       `cosmos_server.key` (the public emulator key)
    postgres_server    the PostgreSQL server, checked once per session
    odbc_store_url     a fresh PostgreSQL database reached through psqlODBC, dropped after the test

Mark tests that use them `@pytest.mark.backend`: `make test-backends` selects them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from servicekit.testing_backends import BackendUnavailableError, backends_required
from servicekit.testing_backends.cosmos import CosmosTestServer
from servicekit.testing_backends.postgres import PostgresTestServer


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "backend: runs on a local server of a production store backend (Cosmos DB test server, "
        "PostgreSQL through ODBC); `make test-backends` runs these",
    )


def unavailable(reason: str) -> NoReturn:
    """Skip the test for a backend this machine lacks, or fail it when every backend is required."""
    if backends_required():
        pytest.fail(f"{reason} (CI or REQUIRE_BACKENDS: every store backend must be tested)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def cosmos_server(request: pytest.FixtureRequest) -> Iterator[CosmosTestServer]:
    default_dir = request.config.rootpath / ".tools" / "cosmosdb-server"
    server = CosmosTestServer(Path(os.environ.get("COSMOSDB_SERVER_DIR", default_dir)))
    try:
        server.start()
    except BackendUnavailableError as exc:
        unavailable(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cosmos_store_url(cosmos_server: CosmosTestServer) -> Iterator[str]:
    database = cosmos_server.new_database_name()
    yield cosmos_server.url(database)
    cosmos_server.drop_database(database)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresTestServer]:
    server = PostgresTestServer()
    try:
        server.check()
    except BackendUnavailableError as exc:
        unavailable(str(exc))
    try:
        yield server
    finally:
        server.drop_all()


@pytest.fixture
def odbc_store_url(postgres_server: PostgresTestServer) -> Iterator[str]:
    database = postgres_server.create_database()
    yield postgres_server.url(database)
    postgres_server.drop_database(database)
