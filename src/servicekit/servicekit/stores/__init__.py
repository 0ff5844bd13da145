"""The store building blocks: a document store and a relational store, each with interchangeable backends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import SecretStr

from servicekit.stores.documents import ContainerSpec, DocumentStore, SqliteDocumentStore
from servicekit.stores.urls import CosmosUrl, SqliteUrl, StoreUrlError, parse_store_url

if TYPE_CHECKING:
    from servicekit.settings import ServiceSettings


def service_document_store(
    settings: ServiceSettings, containers: Sequence[ContainerSpec]
) -> DocumentStore:
    """The document store a service's settings name: its store URL, time limit and Cosmos key."""
    return open_document_store(
        settings.store_url,
        containers,
        timeout=settings.store_timeout_seconds,
        key=settings.cosmos_key,
    )


def open_document_store(
    url: str,
    containers: Sequence[ContainerSpec],
    *,
    timeout: float,
    key: SecretStr | str | None = None,
) -> DocumentStore:
    """The document store a URL names: SQLite for `sqlite:` URLs, Azure Cosmos DB for `cosmos:` URLs.

    `key` is the Cosmos DB account key; without one, Cosmos DB is reached with the process's
    Microsoft Entra identity. The Cosmos SDK is imported only when a Cosmos store is opened, so the
    embedded default needs none of it.
    """
    match parse_store_url(url):
        case SqliteUrl():
            return SqliteDocumentStore(url, containers, timeout=timeout)
        case CosmosUrl() as cosmos_url:
            try:
                from servicekit.stores.cosmos import CosmosDocumentStore
            except ImportError as exc:
                raise StoreUrlError(
                    f"a cosmos: store needs servicekit[cosmos] installed ({exc})"
                ) from exc
            secret = key.get_secret_value() if isinstance(key, SecretStr) else key
            return CosmosDocumentStore(cosmos_url, containers, timeout=timeout, key=secret or None)
        case _:
            raise StoreUrlError(f"no document store backend for {url.split(':', 1)[0]!r} URLs")
