"""Azure Monitor's connection string is a secret: in the cluster it is a file, like the others."""

from __future__ import annotations

from pathlib import Path

import pytest

from servicekit.telemetry import azure_monitor_connection_string

VARIABLE = "APPLICATIONINSIGHTS_CONNECTION_STRING"


@pytest.fixture
def secrets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(VARIABLE, raising=False)
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path))
    return tmp_path


def test_read_from_the_file_the_key_vault_driver_mounts(secrets_dir: Path) -> None:
    (secrets_dir / VARIABLE).write_text("InstrumentationKey=from-key-vault\n")
    assert azure_monitor_connection_string() == "InstrumentationKey=from-key-vault"


def test_the_environment_wins_over_the_file(
    secrets_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (secrets_dir / VARIABLE).write_text("InstrumentationKey=from-key-vault")
    monkeypatch.setenv(VARIABLE, "InstrumentationKey=from-env")
    assert azure_monitor_connection_string() == "InstrumentationKey=from-env"


def test_nothing_configured_means_no_azure_monitor(secrets_dir: Path) -> None:
    assert azure_monitor_connection_string() == ""
