"""The document store on Azure Cosmos DB (NoSQL API), through the async `azure-cosmos` SDK.

Each `ContainerSpec` is a Cosmos container partitioned by the spec's partition key; the database and the
containers are created when the store starts, in the background (`Preparation`), so that a pod starts
and answers its probes while Cosmos DB is unreachable. Every call runs under the store's time limit:
throttling (429, after the time Cosmos DB asks for) and transient failures (connection errors, timeouts,
5xx) are retried inside it, and whatever is still failing when it runs out becomes
`StoreUnavailableError` (503). The SDK's own retry policies (throttling, connection errors) are
turned off, so that this is the one retry mechanism and the time limit bounds it. A write is sent again
when its answer was lost; a stamp on every write (`WRITE_ID`) lets the retry recognise its own
earlier attempt, so that a write that landed is never reported as a conflict.

Authentication is the account key when one is configured, otherwise Microsoft Entra ID through
azure-identity's `DefaultAzureCredential` (on AKS: workload identity; the identity needs the
"Cosmos DB Built-in Data Contributor" role). Stores of one process share one `CosmosClient`, as the SDK
asks: it holds the connection pool and the account's routing metadata.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.cosmos import PartitionKey
from azure.cosmos.aio import ContainerProxy, CosmosClient
from azure.cosmos.documents import ConnectionPolicy
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosClientTimeoutError,
    CosmosHttpResponseError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_random_exponential

from servicekit.stores.documents import (
    Body,
    Container,
    ContainerSpec,
    Document,
    Filter,
    check_field,
    check_filters,
    document_key,
    storable_id,
)
from servicekit.stores.errors import (
    DocumentExistsError,
    PreconditionFailedError,
    StoreUnavailableError,
)
from servicekit.stores.preparation import Preparation
from servicekit.stores.urls import CosmosUrl

T = TypeVar("T")

# What Cosmos DB adds to every item; the services never see it.
SYSTEM_PROPERTIES = frozenset(("_rid", "_self", "_etag", "_attachments", "_ts"))
# A fresh id stamped on every write (and hidden like the system properties). When a write's answer is
# lost and the write is sent again (by the store, or by aiohttp, which repeats a PUT or DELETE whose
# connection closed), the second attempt finds the first one's result and fails its condition; the
# stamp tells "my own earlier attempt landed" apart from "another writer got there first".
WRITE_ID = "_writeId"
_HIDDEN = SYSTEM_PROPERTIES | {WRITE_ID}
# 408 request timeout, 429 throttled, 449 retry with (a conflicting concurrent write on the server).
_RETRIED_STATUSES = frozenset((408, 429, 449))
_BACKOFF = wait_random_exponential(multiplier=0.02, max=0.25)
# One attempt at creating the database and containers; Preparation retries after it.
_PREPARE_ATTEMPT_SECONDS = 30.0


class CosmosDocumentStore:
    """The document store on one Cosmos DB database."""

    def __init__(
        self,
        url: CosmosUrl,
        containers: Sequence[ContainerSpec],
        *,
        timeout: float,
        key: str | None = None,
    ) -> None:
        self._url = url
        self._specs = {spec.name: spec for spec in containers}
        self._timeout = timeout
        self._key = key
        self._client: _SharedClient | None = None
        self._proxies: dict[str, ContainerProxy] = {}
        self._preparation = Preparation("cosmos", self._prepare)
        self._containers = {
            name: _CosmosContainer(spec, self) for name, spec in self._specs.items()
        }

    async def start(self) -> None:
        if self._client is None:
            self._client = _SharedClient.acquire(self._url, self._key, self._timeout)
        self._preparation.start()

    async def stop(self) -> None:
        await self._preparation.stop()
        self._preparation = Preparation("cosmos", self._prepare)  # a restart prepares anew
        if self._client is not None:
            client, self._client = self._client, None
            self._proxies.clear()
            await client.release()

    async def __aenter__(self) -> CosmosDocumentStore:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def wait_ready(self, timeout: float = 30.0) -> None:
        await self._preparation.wait(timeout)

    def container(self, name: str) -> Container:
        return self._containers[name]

    async def call(self, container: str, operation: Callable[[ContainerProxy], Awaitable[T]]) -> T:
        """Run one operation on a container: after preparation, retried, within the time limit."""
        deadline = time.monotonic() + self._timeout
        retrying = AsyncRetrying(
            retry=retry_if_exception(_is_transient),
            wait=_retry_after_or_backoff,
            # Give up early when the next wait would end past the deadline: no point sleeping for it.
            stop=lambda state: time.monotonic() + (state.upcoming_sleep or 0) > deadline,
            reraise=True,
        )
        try:
            async with asyncio.timeout(self._timeout):
                await self._preparation.wait(self._timeout)
                proxy = self._proxies[container]
                async for attempt in retrying:
                    with attempt:
                        return await operation(proxy)
        except TimeoutError:
            raise StoreUnavailableError("Cosmos DB did not answer in time") from None
        except Exception as exc:
            if _is_transient(exc):
                raise StoreUnavailableError(
                    f"Cosmos DB is unavailable: {_describe(exc)}",
                    retry_after_seconds=max(1, math.ceil(_retry_after(exc) or 0)),
                ) from exc
            raise
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    async def _prepare(self) -> None:
        assert self._client is not None, "start() opens the client"
        async with asyncio.timeout(_PREPARE_ATTEMPT_SECONDS):
            database = await self._client.client.create_database_if_not_exists(self._url.database)
            for spec in self._specs.values():
                path = partition_key_path(spec)
                proxy = await database.create_container_if_not_exists(
                    spec.name, partition_key=PartitionKey(path=path)
                )
                paths = (await proxy.read())["partitionKey"]["paths"]
                if paths != [path]:
                    raise RuntimeError(
                        f"the Cosmos container {spec.name!r} is partitioned by {paths}, "
                        f"but this service partitions it by [{path!r}]"
                    )
                self._proxies[spec.name] = proxy


class _CosmosContainer:
    def __init__(self, spec: ContainerSpec, store: CosmosDocumentStore) -> None:
        self.spec = spec
        self._store = store

    async def get(self, id: str, partition: str) -> Document | None:
        if not storable_id(id):
            return None  # its URL would name something else (the container, for "..")

        async def read(proxy: ContainerProxy) -> Document | None:
            try:
                return _document(await proxy.read_item(id, partition_key=partition))
            except CosmosResourceNotFoundError:
                return None

        return await self._store.call(self.spec.name, read)

    async def create(self, body: Body) -> Document:
        partition, id = document_key(self.spec, body)
        stamped, write_id = _stamped(body)

        async def create(proxy: ContainerProxy) -> Document:
            try:
                return _document(await proxy.create_item(stamped))
            except CosmosResourceExistsError:
                if landed := await _landed(proxy, id, partition, write_id):
                    return landed
                raise DocumentExistsError(f"{self.spec.name}/{id} exists") from None

        return await self._store.call(self.spec.name, create)

    async def replace(self, body: Body, *, etag: str) -> Document:
        partition, id = document_key(self.spec, body)
        stamped, write_id = _stamped(body)

        async def replace(proxy: ContainerProxy) -> Document:
            try:
                return _document(
                    await proxy.replace_item(
                        id,
                        stamped,
                        etag=etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
                )
            except (CosmosAccessConditionFailedError, CosmosResourceNotFoundError):
                if landed := await _landed(proxy, id, partition, write_id):
                    return landed
                raise PreconditionFailedError(
                    f"{self.spec.name}/{id} changed since it was read"
                ) from None

        return await self._store.call(self.spec.name, replace)

    async def upsert(self, body: Body) -> Document:
        document_key(self.spec, body)  # refuse an unstorable id or partition key up front
        stamped, _ = _stamped(body)

        async def upsert(proxy: ContainerProxy) -> Document:
            return _document(await proxy.upsert_item(stamped))

        return await self._store.call(self.spec.name, upsert)

    async def delete(self, id: str, partition: str, *, etag: str | None = None) -> bool:
        if not storable_id(id):
            return False  # nothing can be stored under it
        conditions: dict[str, Any] = {}
        if etag is not None:
            conditions = {"etag": etag, "match_condition": MatchConditions.IfNotModified}

        async def delete(proxy: ContainerProxy) -> bool:
            try:
                await proxy.delete_item(id, partition_key=partition, **conditions)
            except CosmosResourceNotFoundError:
                return False
            except CosmosAccessConditionFailedError:
                raise PreconditionFailedError(
                    f"{self.spec.name}/{id} changed since it was read"
                ) from None
            return True

        return await self._store.call(self.spec.name, delete)

    async def query(
        self,
        *where: Filter,
        partition: str | None = None,
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
    ) -> list[Document]:
        query = CosmosQuery.build(
            self.spec, where, partition, order_by=order_by, descending=descending, limit=limit
        )

        async def run(proxy: ContainerProxy) -> list[Document]:
            return [_document(item) async for item in query.items(proxy)]

        return await self._store.call(self.spec.name, run)

    async def ids(self, *where: Filter, partition: str | None = None) -> list[str]:
        query = CosmosQuery.build(self.spec, where, partition, select="ids")

        async def run(proxy: ContainerProxy) -> list[str]:
            return [str(value) async for value in query.items(proxy)]

        return await self._store.call(self.spec.name, run)

    async def count(self, *where: Filter, partition: str | None = None) -> int:
        query = CosmosQuery.build(self.spec, where, partition, select="count")

        async def run(proxy: ContainerProxy) -> int:
            # A cross-partition count may come back as one number per partition range.
            return sum([int(value) async for value in query.items(proxy)])

        return await self._store.call(self.spec.name, run)


@dataclass(frozen=True)
class CosmosQuery:
    """A parameterised Cosmos SQL query built from the store's filters."""

    text: str
    parameters: list[dict[str, object]]
    partition: str | None

    @classmethod
    def build(
        cls,
        spec: ContainerSpec,
        where: Sequence[Filter],
        partition: str | None,
        *,
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
        select: Literal["documents", "count", "ids"] = "documents",
    ) -> CosmosQuery:
        check_filters(where)
        parameters: list[dict[str, object]] = []

        def bind(value: object) -> str:
            name = f"@p{len(parameters)}"
            parameters.append({"name": name, "value": value})
            return name

        clauses = []
        if partition is not None:
            # Redundant with the request's partition key on Cosmos DB, and what the test server
            # filters by (it ignores the header): the portable form.
            clauses.append(f"{field_reference(spec.partition_key)} = {bind(partition)}")
        for name, operator, value in where:
            field = field_reference(name)
            # A field that is absent counts as null, as on the SQLite backend.
            if value is None and operator == "=":
                clauses.append(f"(IS_NULL({field}) OR NOT IS_DEFINED({field}))")
            elif value is None and operator == "!=":
                clauses.append(f"(IS_DEFINED({field}) AND NOT IS_NULL({field}))")
            else:
                clauses.append(f"{field} {operator} {bind(value)}")

        if select == "count":
            text = "SELECT VALUE COUNT(1) FROM c"
        elif select == "ids":
            text = "SELECT VALUE c.id FROM c"
        elif limit is not None:
            # TOP rather than OFFSET/LIMIT: both Cosmos DB and the test server run it.
            text = f"SELECT TOP {bind(int(limit))} * FROM c"
        else:
            text = "SELECT * FROM c"
        if clauses:
            text += " WHERE " + " AND ".join(clauses)
        if order_by is not None and select == "documents":
            check_field(order_by)
            text += f" ORDER BY {field_reference(order_by)} {'DESC' if descending else 'ASC'}"
        return cls(text, parameters, partition)

    def items(self, proxy: ContainerProxy) -> Any:
        """The result pages as one async iterator; scoped to the partition when there is one."""
        if self.partition is None:
            return proxy.query_items(self.text, parameters=self.parameters)
        return proxy.query_items(
            self.text, parameters=self.parameters, partition_key=self.partition
        )


def field_reference(name: str) -> str:
    """`lease.expiresAt` as Cosmos SQL: c["lease"]["expiresAt"].

    Quoted property names, because with the dotted form a field named like a keyword of Cosmos SQL
    (`value`, `order`, `top`, ...) is a syntax error. Names are checked plain identifiers, so they
    need no escaping inside the quotes.
    """
    check_field(name)
    return "c" + "".join(f'["{part}"]' for part in name.split("."))


def partition_key_path(spec: ContainerSpec) -> str:
    return "/" + spec.partition_key.replace(".", "/")


class _SharedClient:
    """One CosmosClient per account (and event loop) in a process, shared by every store using it."""

    _open: dict[tuple[object, ...], _SharedClient] = {}  # noqa: RUF012 (one registry per process)

    def __init__(self, registry_key: tuple[object, ...], client: CosmosClient, credential: Any):
        self._registry_key = registry_key
        self.client = client
        self._credential = credential
        self._users = 0

    @classmethod
    def acquire(cls, url: CosmosUrl, key: str | None, timeout: float) -> _SharedClient:
        registry_key = (asyncio.get_running_loop(), url.endpoint, url.verify_tls, key)
        shared = cls._open.get(registry_key)
        if shared is None:
            credential: Any
            if key:
                credential = key
            else:
                from azure.identity.aio import DefaultAzureCredential

                credential = DefaultAzureCredential()
            client = CosmosClient(
                url.endpoint,
                credential,
                connection_verify=url.verify_tls,
                connection_policy=_connection_policy(),
                # The SDK does not retry on its own (see the module's docstring); it still sends a
                # request whose connection failed to another region of a multi-region account.
                retry_total=0,
                retry_connect=0,
                retry_read=0,
                retry_status=0,
                connection_timeout=max(1, math.ceil(timeout)),
            )
            shared = cls._open[registry_key] = cls(registry_key, client, credential)
        shared._users += 1
        return shared

    async def release(self) -> None:
        self._users -= 1
        if self._users == 0:
            del self._open[self._registry_key]
            await self.client.close()
            if not isinstance(self._credential, str):
                await self._credential.close()


def _connection_policy() -> ConnectionPolicy:
    policy = ConnectionPolicy()
    # No throttling retries inside the SDK: the store retries after the time Cosmos DB asks for,
    # within its own time limit. The client's retry_* arguments cannot say zero for these, and the
    # options class is only exported as the type of this attribute.
    policy.RetryOptions = type(policy.RetryOptions)(max_retry_attempt_count=0)
    return policy


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, CosmosHttpResponseError):
        status = exc.status_code or 0
        return status in _RETRIED_STATUSES or status >= 500
    return isinstance(
        exc, ServiceRequestError | ServiceResponseError | CosmosClientTimeoutError | OSError
    )


def _retry_after(exc: BaseException) -> float | None:
    """The seconds a throttled request should wait, as Cosmos DB said (x-ms-retry-after-ms)."""
    if isinstance(exc, CosmosHttpResponseError) and exc.status_code == 429 and exc.headers:
        milliseconds = exc.headers.get("x-ms-retry-after-ms")
        if milliseconds is not None:
            return float(milliseconds) / 1000
    return None


def _retry_after_or_backoff(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    retry_after = _retry_after(exc) if exc is not None else None
    return retry_after if retry_after is not None else _BACKOFF(state)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, CosmosHttpResponseError):
        return f"HTTP {exc.status_code}"
    return type(exc).__name__


def _stamped(body: Body) -> tuple[Body, str]:
    write_id = uuid.uuid4().hex
    return {**body, WRITE_ID: write_id}, write_id


async def _landed(proxy: ContainerProxy, id: str, partition: str, write_id: str) -> Document | None:
    """The stored document if it is the one this write (`write_id`) put there, else None."""
    try:
        item = await proxy.read_item(id, partition_key=partition)
    except CosmosResourceNotFoundError:
        return None
    return _document(item) if item.get(WRITE_ID) == write_id else None


def _document(item: dict[str, Any]) -> Document:
    body = {name: value for name, value in item.items() if name not in _HIDDEN}
    return Document(body, str(item["_etag"]))
