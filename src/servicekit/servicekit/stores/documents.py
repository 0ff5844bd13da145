"""A document store: JSON documents in partitioned containers, with optimistic concurrency by ETag.

It is the shape of Azure Cosmos DB's NoSQL API, narrowed to what the services use, so that a service
written against it runs unchanged on the embedded SQLite backend here and on Cosmos DB
(`servicekit.stores.cosmos`). Every write returns a new ETag; `replace` and `delete` can be made
conditional on the ETag that was read, which is how two replicas agree on who claimed a drone or a
delivery without a lock.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson

from servicekit.stores.errors import (
    ConstraintViolationError,
    DocumentExistsError,
    PreconditionFailedError,
)
from servicekit.stores.relational import Connection, RelationalStore

Body = dict[str, Any]
Operator = Literal["=", "!=", "<", "<=", ">", ">="]
Scalar = str | int | float | bool | None
Filter = tuple[str, Operator, Scalar]
"""A condition on a field, e.g. ("stage", "=", "Requested") or ("lease.expiresAt", "<", now)."""

_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
# Cosmos DB addresses a document by its id in the URL path: it refuses ids with these characters,
# and "." or ".." would address the container itself once the path is normalised.
_UNSTORABLE_ID = re.compile(r"[/\\?#]|^\.\.?$")
_OPERATORS = frozenset(("=", "!=", "<", "<=", ">", ">="))


@dataclass(frozen=True)
class ContainerSpec:
    """A container: its name, the field its documents are partitioned by, the fields queries filter on.

    Choose the partition key by the access pattern: the field most reads and writes name, so that they
    stay inside one partition (a delivery's id for its events, an owner's id for utilization).
    """

    name: str
    partition_key: str = "id"
    indexed: Sequence[str] = ()

    def __post_init__(self) -> None:
        for name in (self.partition_key, *self.indexed):
            check_field(name)
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"container names are lower_snake_case: {self.name!r}")


@dataclass(frozen=True)
class Document:
    body: Body
    etag: str

    @property
    def id(self) -> str:
        return str(self.body["id"])


class Container(Protocol):
    spec: ContainerSpec

    async def get(self, id: str, partition: str) -> Document | None: ...

    async def create(self, body: Body) -> Document:
        """Raise DocumentExistsError when the id is taken in that partition."""

    async def replace(self, body: Body, *, etag: str) -> Document:
        """Raise PreconditionFailedError when the document changed or vanished since `etag`."""

    async def upsert(self, body: Body) -> Document: ...

    async def delete(self, id: str, partition: str, *, etag: str | None = None) -> bool:
        """Answer False when there was nothing to delete; with `etag`, delete only that version."""

    async def query(
        self,
        *where: Filter,
        partition: str | None = None,
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
    ) -> list[Document]: ...

    async def count(self, *where: Filter, partition: str | None = None) -> int: ...

    async def ids(self, *where: Filter, partition: str | None = None) -> list[str]:
        """The ids of the matching documents, in no particular order, without reading them."""


class DocumentStore(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def wait_ready(self, timeout: float = 30.0) -> None: ...

    def container(self, name: str) -> Container: ...


def partition_of(spec: ContainerSpec, body: Body) -> str:
    """The document's partition key value: a non-empty string, as `get(id, partition)` names it.

    Cosmos DB files a document under the JSON value itself, so a number (2026) would never be found
    again by its text ("2026"); every backend refuses it, not only Cosmos DB.
    """
    value = field_value(body, spec.partition_key)
    if value is None or value == "":
        raise ValueError(f"document has no partition key {spec.partition_key!r}")
    if not isinstance(value, str):
        raise ValueError(f"the partition key {spec.partition_key!r} must be a string: {value!r}")
    return value


def check_filters(where: Sequence[Filter]) -> None:
    for name, operator, _ in where:
        check_field(name)
        if operator not in _OPERATORS:
            raise ValueError(f"unknown operator {operator!r}")


def check_field(name: str) -> None:
    # Field names end up inside SQL text on both backends, so only plain dotted names are allowed.
    if not _FIELD.fullmatch(name):
        raise ValueError(f"not a plain (dotted) field name: {name!r}")


_check_field = check_field  # its earlier, private name


def document_id(body: Body) -> str:
    """The document's id; ValueError when it has none, or one that not every backend can store.

    Every backend refuses the same ids, so a service tested on SQLite fails as it would on Cosmos DB.
    """
    value = body.get("id")
    if not isinstance(value, str) or not value:
        raise ValueError("a document needs a non-empty string id")
    if not storable_id(value):
        raise ValueError(f"a document id cannot be '.' or '..' or contain / \\ ? #: {value!r}")
    return value


def storable_id(id: str) -> bool:
    """Whether a document can have this id; one that cannot is never found, and never deleted."""
    return bool(id) and _UNSTORABLE_ID.search(id) is None


def new_etag() -> str:
    return f'"{uuid.uuid4().hex}"'


class SqliteDocumentStore:
    """The embedded backend: one table per container in a SQLite file, JSON bodies, ETag per row.

    Each indexed field is copied into a column of its own when a document is written, and indexed
    there: an index on json_extract(body, ...) would parse the whole body again for every index on
    every write.
    """

    def __init__(self, url: str, containers: Sequence[ContainerSpec], *, timeout: float) -> None:
        self._specs = {spec.name: spec for spec in containers}
        self._db = RelationalStore(url, self._ensure_tables, timeout=timeout)
        self._containers = {
            name: _SqliteContainer(spec, self._db) for name, spec in self._specs.items()
        }

    async def start(self) -> None:
        await self._db.start()

    async def stop(self) -> None:
        await self._db.stop()

    async def __aenter__(self) -> SqliteDocumentStore:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def wait_ready(self, timeout: float = 30.0) -> None:
        await self._db.wait_ready(timeout)

    def container(self, name: str) -> Container:
        return self._containers[name]

    def _ensure_tables(self, conn: Connection) -> None:
        for spec in self._specs.values():
            _rebuild_without_rowid(conn, spec.name)
            conn.execute(_create_table(spec.name))
            columns = {row["name"] for row in conn.fetch_all(f'PRAGMA table_info("{spec.name}")')}
            for name in spec.indexed:
                if name not in columns:
                    # No declared type: the column keeps each value as it is, as json_extract would.
                    conn.execute(f'ALTER TABLE "{spec.name}" ADD COLUMN "{name}"')
                    conn.execute(
                        f'UPDATE "{spec.name}" SET "{name}" = json_extract(body, \'$.{name}\')'
                    )
                conn.execute(
                    f'CREATE INDEX IF NOT EXISTS "{spec.name}__{name}" ON "{spec.name}" ("{name}")'
                )


def _create_table(name: str) -> str:
    # A rowid table: the bodies (about a kilobyte) live in leaves of their own, appended in order,
    # and the key's index holds only the keys. WITHOUT ROWID would keep each body inside the key's
    # B-tree, a few to a page, so that inserts in random id order split pages all the time.
    return (
        f'CREATE TABLE IF NOT EXISTS "{name}" (pk TEXT NOT NULL, id TEXT NOT NULL, '
        "etag TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (pk, id))"
    )


def _rebuild_without_rowid(conn: Connection, name: str) -> None:
    """Bring a table from a .data/ written before tables had rowids to the present layout.

    Only the documents are copied: the indexed columns and their indexes are then added as for any
    table that lacks them.
    """
    row = conn.fetch_one("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    if row is None or "WITHOUT ROWID" not in str(row["sql"]).upper():
        return
    old = f"{name}__without_rowid"
    conn.execute(f'ALTER TABLE "{name}" RENAME TO "{old}"')
    conn.execute(_create_table(name))
    conn.execute(
        f'INSERT INTO "{name}" (pk, id, etag, body) SELECT pk, id, etag, body FROM "{old}"'
    )
    conn.execute(f'DROP TABLE "{old}"')  # and its indexes with it


class _SqliteContainer:
    def __init__(self, spec: ContainerSpec, db: RelationalStore) -> None:
        self.spec = spec
        self._db = db
        self._table = f'"{spec.name}"'
        self._quoted = [f'"{name}"' for name in spec.indexed]
        self._columns = "".join(f", {column}" for column in self._quoted)
        self._placeholders = ", ?" * len(self._quoted)
        self._assignments = "".join(f", {column} = ?" for column in self._quoted)
        self._upsert_assignments = "".join(f", {c} = excluded.{c}" for c in self._quoted)

    def _indexed_values(self, body: Body) -> list[Any]:
        return [_column_value(field_value(body, name)) for name in self.spec.indexed]

    def _expression(self, name: str) -> str:
        """Where a field's value is read in SQL: its own column when it is indexed."""
        return f'"{name}"' if name in self.spec.indexed else f"json_extract(body, '$.{name}')"

    async def get(self, id: str, partition: str) -> Document | None:
        row = await self._db.read(
            lambda c: c.fetch_one(
                f"SELECT body, etag FROM {self._table} WHERE pk = ? AND id = ?", (partition, id)
            )
        )
        return None if row is None else _document(row)

    async def create(self, body: Body) -> Document:
        key, document = document_key(self.spec, body), Document(body, new_etag())
        try:
            await self._db.write(
                lambda c: c.execute(
                    f"INSERT INTO {self._table} (pk, id, etag, body{self._columns}) "
                    f"VALUES (?, ?, ?, ?{self._placeholders})",
                    (*key, document.etag, _dumps(body), *self._indexed_values(body)),
                )
            )
        except ConstraintViolationError:
            raise DocumentExistsError(f"{self.spec.name}/{key[1]} exists") from None
        return document

    async def replace(self, body: Body, *, etag: str) -> Document:
        key, document = document_key(self.spec, body), Document(body, new_etag())
        changed = await self._db.write(
            lambda c: c.execute(
                f"UPDATE {self._table} SET etag = ?, body = ?{self._assignments} "
                "WHERE pk = ? AND id = ? AND etag = ?",
                (document.etag, _dumps(body), *self._indexed_values(body), *key, etag),
            )
        )
        if not changed:
            raise PreconditionFailedError(f"{self.spec.name}/{key[1]} changed since it was read")
        return document

    async def upsert(self, body: Body) -> Document:
        key, document = document_key(self.spec, body), Document(body, new_etag())
        await self._db.write(
            lambda c: c.execute(
                f"INSERT INTO {self._table} (pk, id, etag, body{self._columns}) "
                f"VALUES (?, ?, ?, ?{self._placeholders}) "
                "ON CONFLICT (pk, id) DO UPDATE SET etag = excluded.etag, body = excluded.body"
                f"{self._upsert_assignments}",
                (*key, document.etag, _dumps(body), *self._indexed_values(body)),
            )
        )
        return document

    async def delete(self, id: str, partition: str, *, etag: str | None = None) -> bool:
        def delete(c: Connection) -> bool:
            if etag is None:
                return bool(
                    c.execute(f"DELETE FROM {self._table} WHERE pk = ? AND id = ?", (partition, id))
                )
            if c.execute(
                f"DELETE FROM {self._table} WHERE pk = ? AND id = ? AND etag = ?",
                (partition, id, etag),
            ):
                return True
            if c.fetch_one(
                f"SELECT 1 AS found FROM {self._table} WHERE pk = ? AND id = ?", (partition, id)
            ):
                raise PreconditionFailedError(f"{self.spec.name}/{id} changed since it was read")
            return False

        return await self._db.write(delete)

    async def query(
        self,
        *where: Filter,
        partition: str | None = None,
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
    ) -> list[Document]:
        sql, params = self._where(where, partition)
        if order_by is not None:
            check_field(order_by)
            sql += f" ORDER BY {self._expression(order_by)} {'DESC' if descending else 'ASC'}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = await self._db.read(
            lambda c: c.fetch_all(f"SELECT body, etag FROM {self._table}{sql}", params)
        )
        return [_document(row) for row in rows]

    async def ids(self, *where: Filter, partition: str | None = None) -> list[str]:
        sql, params = self._where(where, partition)
        return await self._db.read(
            lambda c: c.fetch_column(f"SELECT id FROM {self._table}{sql}", params)
        )

    async def count(self, *where: Filter, partition: str | None = None) -> int:
        sql, params = self._where(where, partition)
        row = await self._db.read(
            lambda c: c.fetch_one(f"SELECT COUNT(*) AS n FROM {self._table}{sql}", params)
        )
        return int(row["n"]) if row else 0

    def _where(self, where: Sequence[Filter], partition: str | None) -> tuple[str, list[Scalar]]:
        check_filters(where)
        clauses: list[str] = []
        params: list[Scalar] = []
        if partition is not None:
            clauses.append("pk = ?")
            params.append(partition)
        for name, operator, value in where:
            expression = self._expression(name)
            if value is None and operator in ("=", "!="):
                clauses.append(f"{expression} IS {'NOT ' if operator == '!=' else ''}NULL")
            else:
                clauses.append(f"{expression} {operator} ?")
                params.append(value)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def document_key(spec: ContainerSpec, body: Body) -> tuple[str, str]:
    """The document's (partition, id), checked before anything is written (ValueError if not
    every backend could store them)."""
    return partition_of(spec, body), document_id(body)


def field_value(body: Body, name: str) -> Any:
    """The value of a (dotted) field of a document; None where it is missing."""
    value: Any = body
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _column_value(value: Any) -> Any:
    # As json_extract gives it: objects and arrays as JSON text, everything else as it is.
    return _dumps(value) if isinstance(value, dict | list) else value


def _dumps(body: Any) -> str:
    return orjson.dumps(body).decode()


def _document(row: dict[str, Any]) -> Document:
    return Document(orjson.loads(row["body"]), row["etag"])
