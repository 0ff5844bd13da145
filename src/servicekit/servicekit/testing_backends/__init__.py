"""Local servers for the production store backends, for tests: the Cosmos DB test server and PostgreSQL.

`servicekit.testing_backends.plugin` turns them into pytest fixtures (the repository's pytest
configuration loads it with `-p`), so that servicekit's contract suites, a service's tests and the
end-to-end tests all run against the same servers the same way. Where a server cannot run (no Node.js,
no unixODBC, no PostgreSQL), its tests are skipped with the reason, unless `CI=true` or
`REQUIRE_BACKENDS=1` says that every backend must be tested: then they fail.
"""

from __future__ import annotations

import os


class BackendUnavailableError(RuntimeError):
    """A test backend cannot run on this machine; the message says what is missing."""


def backends_required() -> bool:
    """Whether a missing backend fails the test run instead of skipping its tests."""
    required = os.environ.get("REQUIRE_BACKENDS", "").strip().lower() not in ("", "0", "false")
    return required or os.environ.get("CI", "").strip().lower() == "true"
