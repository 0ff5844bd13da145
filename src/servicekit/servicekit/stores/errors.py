"""What a store tells the service, whatever the backend behind it."""

from __future__ import annotations


class StoreError(Exception):
    pass


class StoreUnavailableError(StoreError):
    """The store did not answer in time or is down; the request may be retried later (503)."""

    def __init__(self, message: str, *, retry_after_seconds: int = 1) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class ConstraintViolationError(StoreError):
    """A write broke a uniqueness or integrity rule, e.g. a row with that key already exists."""


class DocumentExistsError(StoreError):
    """A create found a document with the same id and partition key."""


class PreconditionFailedError(StoreError):
    """A conditional write lost: the document changed (or vanished) since it was read."""


class DocumentNotFoundError(StoreError):
    pass
