"""The real stack for the end-to-end tests: nginx and the three services under supervisord.

Requests go through the gateway only. Side effects that the public API does not show (a package
removed, a drone released) are checked at the internal services' own ports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from e2e_support import stack_settings

from devstack.stack import Stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The system on its embedded SQLite stores (a module may override it with other stores)."""
    with Stack(stack_settings(tmp_path_factory.mktemp("stack"))) as running:
        yield running


@pytest.fixture
def gateway(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as client:
        yield client


@pytest.fixture
def internal(stack: Stack) -> Iterator[Callable[[str], httpx.Client]]:
    """A client for one internal service, for checking what the public API does not show."""
    clients: list[httpx.Client] = []

    def client(service: str) -> httpx.Client:
        clients.append(httpx.Client(base_url=stack.service_url(service), timeout=10))
        return clients[-1]

    yield client
    for opened in clients:
        opened.close()
