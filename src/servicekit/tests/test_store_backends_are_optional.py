"""The production backends' libraries are loaded only when a store of theirs is configured.

`import pyodbc` fails where unixODBC (libodbc.so.2) is missing, as on a fresh laptop, and the Cosmos
SDK is an extra (servicekit[cosmos]): the embedded SQLite default must need neither.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from azure.core.credentials import AccessToken

from servicekit.stores import open_document_store
from servicekit.stores.documents import ContainerSpec
from servicekit.stores.relational import AZURE_SQL_SCOPE, EntraAccessToken, RelationalStore
from servicekit.stores.urls import StoreUrlError

ODBC_URL = "odbc:Driver={PostgreSQL Unicode};Server=127.0.0.1;Database=x;UID=postgres"


def test_importing_servicekit_loads_no_backend_library() -> None:
    code = (
        "import sys, servicekit, servicekit.settings, servicekit.stores, "
        "servicekit.stores.relational, servicekit.stores.documents\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pyodbc', 'azure'}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout

    assert loaded.strip() == "[]"


async def test_sqlite_stores_work_without_unixodbc(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "pyodbc", None)  # what a missing libodbc.so.2 looks like

    async with RelationalStore(f"sqlite:///{tmp_path}/p.db", lambda c: None) as db:
        assert await db.read(lambda c: c.fetch_one("SELECT 1 AS one")) == {"one": 1}
    with pytest.raises(StoreUrlError, match="unixodbc"):
        RelationalStore(ODBC_URL, lambda c: None)


def test_a_cosmos_store_without_the_cosmos_extra_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "servicekit.stores.cosmos", raising=False)
    monkeypatch.setitem(sys.modules, "azure.cosmos", None)

    with pytest.raises(StoreUrlError, match=r"servicekit\[cosmos\]"):
        open_document_store(
            "cosmos://acct.documents.azure.com/shipping", [ContainerSpec("drones")], timeout=1
        )


class IssuedTokens:
    """A credential that issues numbered tokens with a chosen lifetime."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(f"eyJ{len(self.scopes)}", int(time.time() + self.lifetime))


def test_azure_sql_tokens_take_the_odbc_drivers_form() -> None:
    attribute = EntraAccessToken(IssuedTokens(3600)).connection_attribute()

    length = int.from_bytes(attribute[:4], "little")
    assert length == len(attribute) - 4
    assert attribute[4:].decode("utf-16-le") == "eyJ1"


def test_azure_sql_tokens_are_reused_until_they_near_expiry() -> None:
    long_lived, short_lived = IssuedTokens(3600), IssuedTokens(60)
    long_token, short_token = EntraAccessToken(long_lived), EntraAccessToken(short_lived)

    for _ in range(3):
        long_token.connection_attribute()
        short_token.connection_attribute()

    assert long_lived.scopes == [(AZURE_SQL_SCOPE,)]
    assert len(short_lived.scopes) == 3, "a token 60 s from expiry is refreshed on every connect"
