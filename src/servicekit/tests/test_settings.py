from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from sample_service import SampleSettings

from servicekit.stores.urls import COSMOS_EMULATOR_KEY, insecure_store_reasons, redact_store_url


def test_settings_come_from_prefixed_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPLE_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("LOG_LEVEL", "ERROR")  # another service's, or nobody's: ignored

    assert SampleSettings().log_level == "DEBUG"


def test_mounted_secret_files_fill_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "SAMPLE_STORE_URL").write_text("sqlite:///from/the/vault.db")
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path))

    assert SampleSettings().store_url == "sqlite:///from/the/vault.db"


def test_environment_variables_win_over_secret_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "SAMPLE_STORE_URL").write_text("sqlite:///from/the/vault.db")
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("SAMPLE_STORE_URL", "sqlite:///from/the/env.db")

    assert SampleSettings().store_url == "sqlite:///from/the/env.db"


def test_development_accepts_the_embedded_store() -> None:
    assert SampleSettings().is_development


def test_deployed_environments_refuse_the_embedded_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPLE_ENVIRONMENT", "prod")

    with pytest.raises(ValidationError, match="SAMPLE_STORE_URL is the embedded SQLite store"):
        SampleSettings()


def test_deployed_environments_accept_a_production_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPLE_ENVIRONMENT", "prod")
    monkeypatch.setenv("SAMPLE_STORE_URL", "cosmos://acct.documents.azure.com:443/shipping")

    assert not SampleSettings().is_development


@pytest.mark.parametrize(
    ("url", "key", "reason"),
    [
        ("cosmos://127.0.0.1:8081/db?verify=false", None, "verification off"),
        ("cosmos://acct.documents.azure.com/db", COSMOS_EMULATOR_KEY, "public emulator key"),
        (
            "odbc:Driver={ODBC Driver 18 for SQL Server};Server=x;TrustServerCertificate=yes",
            None,
            "trustservercertificate",
        ),
        ("odbc:Driver={ODBC Driver 18 for SQL Server};Server=x;Encrypt=no", None, "encrypt=no"),
        ("mysql://x", None, "unknown store URL scheme"),
    ],
)
def test_insecure_store_settings_are_named(url: str, key: str | None, reason: str) -> None:
    reasons = insecure_store_reasons(url, setting="X_STORE_URL", key=key)

    assert any(reason in r for r in reasons), reasons


def test_secure_production_stores_have_no_reasons() -> None:
    assert insecure_store_reasons("cosmos://a.documents.azure.com/db", setting="X") == []
    assert (
        insecure_store_reasons(
            "odbc:Driver={ODBC Driver 18 for SQL Server};Server=tcp:x,1433;Encrypt=yes",
            setting="X",
        )
        == []
    )


def test_passwords_are_redacted_from_store_urls() -> None:
    url = "odbc:Driver={PostgreSQL Unicode};Server=db;UID=app;PWD={s3cr;et};Database=p"

    redacted = redact_store_url(url)

    assert "s3cr" not in redacted
    assert "PWD=***" in redacted
    assert "UID=app" in redacted


def test_the_cosmos_key_comes_from_a_secret_file_and_stays_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "SAMPLE_COSMOS_KEY").write_text("a-real-key")
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path))

    settings = SampleSettings()

    assert settings.cosmos_key is not None
    assert settings.cosmos_key.get_secret_value() == "a-real-key"
    assert "a-real-key" not in repr(settings)


def test_deployed_environments_refuse_the_cosmos_emulator_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SAMPLE_ENVIRONMENT", "prod")
    monkeypatch.setenv("SAMPLE_STORE_URL", "cosmos://acct.documents.azure.com:443/shipping")
    monkeypatch.setenv("SAMPLE_COSMOS_KEY", COSMOS_EMULATOR_KEY)

    with pytest.raises(ValidationError, match="public emulator key"):
        SampleSettings()
