"""Packages in a relational database: the schema, and the few statements the service needs.

The SQL is the portable subset that SQLite, PostgreSQL and Azure SQL all run; timestamps are ISO-8601
text in UTC so that a month is a string range (see `servicekit.stores.relational`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from servicekit.stores.errors import ConstraintViolationError
from servicekit.stores.relational import Connection, Migration, Migrations, RelationalStore

SCHEMA = Migrations(
    Migration(
        1,
        [
            "CREATE TABLE packages ("
            " id {key} NOT NULL PRIMARY KEY,"
            " owner_id {key} NULL,"
            " size VARCHAR(16) NOT NULL,"
            " weight {real} NOT NULL,"
            " tag {text} NOT NULL,"
            " created_at {timestamp} NOT NULL,"
            " updated_at {timestamp} NOT NULL)",
            "CREATE INDEX packages_by_owner_created ON packages (owner_id, created_at)",
        ],
    )
)

_COLUMNS = "id, owner_id, size, weight, tag, created_at, updated_at"
_CHANGEABLE = ("owner_id", "size", "weight", "tag")


@dataclass(frozen=True)
class PackageRecord:
    id: str
    owner_id: str | None
    size: str
    weight: float
    tag: str
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class MonthTotals:
    count: int
    total_weight: float


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class PackageRepository:
    def __init__(self, db: RelationalStore) -> None:
        self._db = db

    async def put(self, id: str, fields: dict[str, Any]) -> tuple[PackageRecord, bool]:
        """Create the package, or replace it whole; answer it and whether it was created."""
        while True:
            now = utc_now()
            try:
                record = await self._db.write(partial(self._insert, id=id, fields=fields, now=now))
                return record, True
            except ConstraintViolationError:
                pass  # it exists (perhaps created a moment ago by a concurrent PUT): replace it
            replaced = await self._db.write(partial(self._update, id=id, changes=fields, now=now))
            if replaced is not None:
                return replaced, False
            # Deleted between the two statements: try creating it again.

    async def get(self, id: str) -> PackageRecord | None:
        return await self._db.read(lambda c: _select(c, id))

    async def patch(self, id: str, changes: dict[str, Any]) -> PackageRecord | None:
        return await self._db.write(lambda c: self._update(c, id, changes, utc_now()))

    async def delete(self, id: str) -> None:
        await self._db.write(lambda c: c.execute("DELETE FROM packages WHERE id = ?", (id,)))

    async def month_totals(self, owner_id: str, year: int, month: int) -> MonthTotals:
        start = datetime(year, month, 1, tzinfo=UTC)
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
        row = await self._db.read(
            lambda c: c.fetch_one(
                "SELECT COUNT(*) AS packages, COALESCE(SUM(weight), 0) AS total_weight "
                "FROM packages WHERE owner_id = ? AND created_at >= ? AND created_at < ?",
                (owner_id, start.isoformat(), end.isoformat()),
            )
        )
        assert row is not None  # an aggregate always answers one row
        return MonthTotals(int(row["packages"]), float(row["total_weight"]))

    @staticmethod
    def _insert(c: Connection, id: str, fields: dict[str, Any], now: str) -> PackageRecord:
        record = PackageRecord(
            id=id,
            owner_id=fields.get("owner_id"),
            size=fields["size"],
            weight=fields["weight"],
            tag=fields["tag"],
            created_at=now,
            updated_at=now,
        )
        c.execute(
            f"INSERT INTO packages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.owner_id,
                record.size,
                record.weight,
                record.tag,
                record.created_at,
                record.updated_at,
            ),
        )
        return record

    @staticmethod
    def _update(c: Connection, id: str, changes: dict[str, Any], now: str) -> PackageRecord | None:
        columns = [name for name in _CHANGEABLE if name in changes]
        assignments = "".join(f"{name} = ?, " for name in columns)
        changed = c.execute(
            f"UPDATE packages SET {assignments}updated_at = ? WHERE id = ?",
            (*(changes[name] for name in columns), now, id),
        )
        return _select(c, id) if changed else None


def _select(c: Connection, id: str) -> PackageRecord | None:
    row = c.fetch_one(f"SELECT {_COLUMNS} FROM packages WHERE id = ?", (id,))
    return None if row is None else PackageRecord(**row)
