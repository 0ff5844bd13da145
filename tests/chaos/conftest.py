"""The chaos tests' stack and their reports.

Each test runs its own stack (the processes it kills, the stores it blocks, its data) on free ports
in a temporary directory. Reports are printed at the end of the run, whatever its outcome, and kept
under .data/chaos/.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from chaos_support import chaos_stack_settings

from devstack.stack import Stack

REPORTS = pytest.StashKey[list[str]]()


@pytest.fixture
def chaos_data(request: pytest.FixtureRequest) -> Path:
    """The test's data directory (stores, logs) under .data/chaos/, kept after the run to look into."""
    path: Path = request.config.rootpath / ".data" / "chaos" / request.node.name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@pytest.fixture
def chaos_stack(chaos_data: Path) -> Iterator[Stack]:
    with Stack(chaos_stack_settings(chaos_data)) as stack:
        yield stack


@pytest.fixture
def record_report(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """Keep a report: printed in the run's summary and written to .data/chaos/<name>.txt."""

    def record(name: str, text: str) -> None:
        path = request.config.rootpath / ".data" / "chaos" / f"{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
        request.config.stash.setdefault(REPORTS, []).append(f"{text}\n  (kept in {path})")

    return record


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    reports = config.stash.get(REPORTS, [])
    if reports:
        terminalreporter.section("chaos reports")
        for text in reports:
            terminalreporter.write_line(text)
