"""The package API, good and bad inputs, over HTTP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

PROBLEM_JSON = "application/problem+json"
BOOKS = {"size": "Small", "weight": 2.5, "tag": "books", "ownerId": "alice"}


async def test_put_creates_a_package(packages: httpx.AsyncClient) -> None:
    response = await packages.put("/api/packages/p1", json=BOOKS)

    assert response.status_code == 201
    assert response.headers["location"] == "/api/packages/p1"
    body = response.json()
    assert {k: body[k] for k in ("id", "ownerId", "size", "weight", "tag")} == {"id": "p1", **BOOKS}
    assert body["createdAt"] == body["updatedAt"]


async def test_put_replaces_an_existing_package_whole(packages: httpx.AsyncClient) -> None:
    created = (await packages.put("/api/packages/p1", json=BOOKS)).json()

    replaced = await packages.put(
        "/api/packages/p1", json={"size": "LARGE", "weight": 9, "tag": "tv"}
    )
    package = (await packages.get("/api/packages/p1")).json()

    assert replaced.status_code == 204
    assert replaced.content == b""
    assert package["size"] == "Large"
    assert package["ownerId"] is None, "a PUT replaces the whole package"
    assert package["createdAt"] == created["createdAt"]
    assert package["updatedAt"] > created["updatedAt"]


async def test_get_answers_the_package_or_404(packages: httpx.AsyncClient) -> None:
    await packages.put("/api/packages/p1", json=BOOKS)

    found = await packages.get("/api/packages/p1")
    missing = await packages.get("/api/packages/p2")

    assert found.status_code == 200
    assert found.json()["tag"] == "books"
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM_JSON


async def test_patch_changes_only_the_fields_sent(packages: httpx.AsyncClient) -> None:
    await packages.put("/api/packages/p1", json=BOOKS)

    response = await packages.patch("/api/packages/p1", json={"weight": 3.75})

    assert response.status_code == 200
    assert response.json()["weight"] == 3.75
    assert response.json()["tag"] == "books"
    assert response.json()["ownerId"] == "alice"


async def test_patch_of_a_missing_package_is_404(packages: httpx.AsyncClient) -> None:
    response = await packages.patch("/api/packages/nope", json={"weight": 1})

    assert response.status_code == 404


async def test_patch_refuses_nulls_for_required_fields(packages: httpx.AsyncClient) -> None:
    await packages.put("/api/packages/p1", json=BOOKS)

    response = await packages.patch("/api/packages/p1", json={"size": None})

    assert response.status_code == 422
    assert (await packages.get("/api/packages/p1")).json()["size"] == "Small"


async def test_delete_is_idempotent(packages: httpx.AsyncClient) -> None:
    await packages.put("/api/packages/p1", json=BOOKS)

    first = await packages.delete("/api/packages/p1")
    second = await packages.delete("/api/packages/p1")

    assert (first.status_code, second.status_code) == (204, 204)
    assert (await packages.get("/api/packages/p1")).status_code == 404


async def test_summary_counts_and_weighs_an_owners_month(packages: httpx.AsyncClient) -> None:
    await packages.put("/api/packages/a1", json={**BOOKS, "weight": 2})
    await packages.put("/api/packages/a2", json={**BOOKS, "weight": 3.5})
    await packages.put("/api/packages/b1", json={**BOOKS, "ownerId": "bob"})
    now = datetime.now(UTC)

    this_month = await packages.get(
        "/api/packages/summary", params={"ownerId": "alice", "year": now.year, "month": now.month}
    )
    last_year = await packages.get(
        "/api/packages/summary", params={"ownerId": "alice", "year": now.year - 1, "month": 12}
    )

    assert this_month.json() == {
        "ownerId": "alice",
        "year": now.year,
        "month": now.month,
        "count": 2,
        "totalWeight": 5.5,
    }
    assert last_year.json()["count"] == 0
    assert last_year.json()["totalWeight"] == 0


@pytest.mark.parametrize(
    "params",
    [
        {"year": 2026, "month": 1},
        {"ownerId": "alice", "month": 1},
        {"ownerId": "alice", "year": 2026, "month": 13},
        {"ownerId": "alice", "year": "twenty", "month": 1},
        {"ownerId": "al ice", "year": 2026, "month": 1},
    ],
)
async def test_summary_refuses_missing_or_invalid_parameters(
    packages: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    response = await packages.get("/api/packages/summary", params=params)

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**BOOKS, "size": "Gigantic"}, "size"),
        ({**BOOKS, "size": 3}, "size"),
        ({**BOOKS, "weight": 0}, "weight"),
        ({**BOOKS, "weight": -2}, "weight"),
        ({**BOOKS, "weight": 25.01}, "weight"),
        ({**BOOKS, "weight": 1e308}, "weight"),
        ({**BOOKS, "weight": "heavy"}, "weight"),
        ({**BOOKS, "tag": ""}, "tag"),
        ({**BOOKS, "tag": "x" * 10_000}, "tag"),
        ({**BOOKS, "tag": "nul\u0000byte"}, "tag"),
        ({**BOOKS, "tag": "bell\u0007"}, "tag"),
        ({**BOOKS, "ownerId": "spaces are not ids"}, "ownerId"),
        ({**BOOKS, "ownerId": "x" * 65}, "ownerId"),
        ({"weight": 1, "tag": "t"}, "size"),
    ],
)
async def test_bad_packages_are_422_naming_the_field(
    packages: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await packages.put("/api/packages/bad", json=body)

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert field in {error["field"] for error in response.json()["errors"]}
    assert (await packages.get("/api/packages/bad")).status_code == 404, "nothing half-stored"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"size": "Small", "weight": 1, "tag": ',
        b'{"size": "Small", "weight": 1' + b"0" * 5000 + b', "tag": "t"}',
        b'{"size": "Small", "weight": 1e999, "tag": "t"}',
        b'{"size": "Small", "weight": 1, "tag": "\\ud800"}',
        b"[1, 2, 3]",
        b"\xc3\x28",
    ],
)
async def test_malformed_or_odd_bodies_are_4xx_problems(
    packages: httpx.AsyncClient, raw: bytes
) -> None:
    response = await packages.put(
        "/api/packages/odd", content=raw, headers={"content-type": "application/json"}
    )

    assert 400 <= response.status_code < 500
    assert response.headers["content-type"] == PROBLEM_JSON


async def test_unicode_tags_are_normalised_and_kept(packages: httpx.AsyncClient) -> None:
    decomposed = "Cafe\u0301 \U0001f4e6"  # e + combining accent, and a package emoji
    await packages.put("/api/packages/u1", json={**BOOKS, "tag": decomposed})

    assert (await packages.get("/api/packages/u1")).json()["tag"] == "Caf\u00e9 \U0001f4e6"


async def test_an_id_that_is_not_an_identifier_is_refused(packages: httpx.AsyncClient) -> None:
    response = await packages.put("/api/packages/" + "x" * 65, json=BOOKS)

    assert response.status_code == 422


async def test_concurrent_puts_of_one_new_id_create_it_exactly_once(
    packages: httpx.AsyncClient,
) -> None:
    responses = await asyncio.gather(
        *(
            packages.put("/api/packages/same", json={**BOOKS, "weight": 1 + i / 10})
            for i in range(50)
        )
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [204] * 49


async def test_concurrent_puts_of_distinct_ids_all_persist(packages: httpx.AsyncClient) -> None:
    responses = await asyncio.gather(
        *(packages.put(f"/api/packages/many-{i}", json=BOOKS) for i in range(50))
    )

    assert {r.status_code for r in responses} == {201}
    for i in range(50):
        assert (await packages.get(f"/api/packages/many-{i}")).status_code == 200


async def test_summary_is_a_resource_and_not_a_package_id(packages: httpx.AsyncClient) -> None:
    # A package called "summary" could be created, but GET /api/packages/summary is the summary.
    created = await packages.put("/api/packages/summary", json=BOOKS)
    options = await packages.options("/api/packages/summary")

    assert (created.status_code, created.headers["allow"]) == (405, "GET")
    assert (options.status_code, options.headers["allow"]) == (405, "GET")
    assert (await packages.get("/api/packages/summary")).status_code == 422, "still the summary"
