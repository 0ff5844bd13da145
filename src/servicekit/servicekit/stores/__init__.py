"""The store building blocks: a document store and a relational store, each with interchangeable backends."""

from __future__ import annotations

from collections.abc import Sequence

from servicekit.stores.documents import ContainerSpec, DocumentStore, SqliteDocumentStore
from servicekit.stores.urls import SqliteUrl, StoreUrlError, parse_store_url


def open_document_store(
    url: str, containers: Sequence[ContainerSpec], *, timeout: float
) -> DocumentStore:
    """The document store a URL names: SQLite for `sqlite:` URLs."""
    match parse_store_url(url):
        case SqliteUrl():
            return SqliteDocumentStore(url, containers, timeout=timeout)
        case _:
            raise StoreUrlError(f"no document store backend for {url.split(':', 1)[0]!r} URLs")
